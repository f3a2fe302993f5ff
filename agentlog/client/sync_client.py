"""AgentlogClient: the blocking client (one httpx.Client, safe to share between threads).

Invariant: this module only sends and sleeps; what to send, what an answer means and whether to
retry are the shared core's (core.py), the same as the async client's.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TypeVar

import httpx

from agentlog.client.binding import SyncBinder
from agentlog.client.calls import Call
from agentlog.client.core import Done
from agentlog.client.options import ClientOptions

T = TypeVar("T")


class AgentlogClient(SyncBinder, ClientOptions[httpx.BaseTransport, None]):
    """The command and query APIs of agentlog, blocking. Use as a context manager, or `close()`."""

    _default_sleep = staticmethod(time.sleep)

    def _open(self, transport: httpx.BaseTransport | None, timeout: float | httpx.Timeout) -> httpx.Client:
        return httpx.Client(transport=transport, timeout=timeout)

    def _send(self, call: Call[T]) -> T:
        exchange = self._core.exchange(call)
        while True:
            try:
                step = exchange.answered(self._http.send(exchange.request()))
            except httpx.TransportError as exc:
                step = exchange.failed(exc)
            if isinstance(step, Done):
                return step.value
            self._sleep(step.delay_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AgentlogClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
