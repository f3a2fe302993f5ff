"""AsyncAgentlogClient: the asyncio client (one httpx.AsyncClient, for one event loop).

Its default transport is LeanAsyncTransport (transport.py) for plain-http APIs without a proxy,
httpx's own otherwise or when one is given.

Invariant: this module only sends and sleeps; what to send, what an answer means and whether to
retry are the shared core's (core.py), the same as the sync client's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import TracebackType
from typing import TypeVar

import httpx

from agentlog.client.binding import AsyncBinder
from agentlog.client.calls import Call
from agentlog.client.core import Done
from agentlog.client.options import ClientOptions
from agentlog.client.transport import LeanAsyncTransport, lean_transport_applies

T = TypeVar("T")


class AsyncAgentlogClient(AsyncBinder, ClientOptions[httpx.AsyncBaseTransport, Awaitable[None]]):
    """The command and query APIs of agentlog, for asyncio. Use `async with`, or `await aclose()`."""

    _default_sleep = staticmethod(asyncio.sleep)

    def _open(self, transport: httpx.AsyncBaseTransport | None, timeout: float | httpx.Timeout) -> httpx.AsyncClient:
        if transport is None and lean_transport_applies(*self._core.urls()):
            transport = LeanAsyncTransport()  # httpcore's pool cost ~0.6 ms of CPU a request (transport.py)
        return httpx.AsyncClient(transport=transport, timeout=timeout)

    async def _send(self, call: Call[T]) -> T:
        exchange = self._core.exchange(call)
        while True:
            try:
                step = exchange.answered(await self._http.send(exchange.request()))
            except httpx.TransportError as exc:
                step = exchange.failed(exc)
            if isinstance(step, Done):
                return step.value
            await self._sleep(step.delay_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncAgentlogClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
