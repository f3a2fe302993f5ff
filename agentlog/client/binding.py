"""How one call-building function becomes a method of both clients.

An `Operation(build)` (or `Paged(build)`) is a descriptor: looked up on a sync client it is a
function with build's signature that sends the call and returns the result (or iterates over every
item of every page); on an async client the same function is a coroutine function (an async
iterator). Type checkers see the exact signature and return type of each (overloads of `__get__`
on the client's kind), so the signature and logic of each method are written once, in writes.py
and queries.py.

Invariant: a bound method builds its Call when called, once, and hands it to the client's `_send`;
retries re-send that Call, never a rebuilt one (so its Idempotency-Key holds).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Generic, ParamSpec, Self, TypeVar, overload

from agentlog.client.calls import Call
from agentlog.client.models import Page

P = ParamSpec("P")
T = TypeVar("T")


class SyncBinder:
    """The sync client's side: `_send` returns the result."""

    def _send(self, call: Call[T]) -> T:
        raise NotImplementedError

    def send(self, call: Call[T]) -> T:
        """Send a Call built by a function of agentlog.client.writes or queries (for code that
        composes calls once for both clients, as agentlog.integrations does), with this client's
        retries and read-your-writes."""
        return self._send(call)

    def _bind(self, build: Callable[P, Call[T]]) -> Callable[P, T]:
        @functools.wraps(build)
        def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return self._send(build(*args, **kwargs))

        return method

    def _bind_pages(self, build: Callable[P, Call[Page[T]]]) -> Callable[P, Iterator[T]]:
        @functools.wraps(build)
        def method(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
            call: Call[Page[T]] | None = build(*args, **kwargs)
            while call is not None:
                page = self._send(call)
                yield from page.items
                call = call.next_page(page.next_cursor)

        return method


class AsyncBinder:
    """The async client's side: `_send` is a coroutine."""

    async def _send(self, call: Call[T]) -> T:
        raise NotImplementedError

    async def send(self, call: Call[T]) -> T:
        """Send a Call built by a function of agentlog.client.writes or queries (for code that
        composes calls once for both clients, as agentlog.integrations does), with this client's
        retries and read-your-writes."""
        return await self._send(call)

    def _bind(self, build: Callable[P, Call[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(build)
        async def method(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self._send(build(*args, **kwargs))

        return method

    def _bind_pages(self, build: Callable[P, Call[Page[T]]]) -> Callable[P, AsyncIterator[T]]:
        @functools.wraps(build)
        async def method(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
            call: Call[Page[T]] | None = build(*args, **kwargs)
            while call is not None:
                page = await self._send(call)
                for item in page.items:
                    yield item
                call = call.next_page(page.next_cursor)

        return method


class Operation(Generic[P, T]):
    """A method that sends one call and returns its result."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, client: None, owner: type) -> Self: ...
    @overload
    def __get__(self, client: SyncBinder, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncBinder, owner: type) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, client: SyncBinder | AsyncBinder | None, owner: type) -> Any:
        return self if client is None else client._bind(self.build)


class Paged(Generic[P, T]):
    """A method that iterates over every item of a list query, page after page."""

    def __init__(self, build: Callable[P, Call[Page[T]]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, client: None, owner: type) -> Self: ...
    @overload
    def __get__(self, client: SyncBinder, owner: type) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, client: AsyncBinder, owner: type) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, client: SyncBinder | AsyncBinder | None, owner: type) -> Any:
        return self if client is None else client._bind_pages(self.build)
