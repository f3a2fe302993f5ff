"""What both clients take when constructed, in one place: the APIs' addresses, the key, timeouts,
the retry policy, read-your-writes, and the test seams (transport, sleep, clock, jitter).

Invariant: the client reads no environment variable and no file: everything it uses is passed here
(the application's own settings decide where the values come from).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import httpx

from agentlog.client.core import ClientCore
from agentlog.client.methods import Methods
from agentlog.client.retry import RetryPolicy

TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)
SleepT = TypeVar("SleepT")

COMMANDS_URL = "http://127.0.0.1:8000"  # `agentlog dev`'s command API
QUERIES_URL = "http://127.0.0.1:8001"  # `agentlog dev`'s query API
TIMEOUT_S = 10.0


class ClientOptions(Methods, Generic[TransportT, SleepT]):
    _default_sleep: Callable[[float], Any]  # time.sleep or asyncio.sleep, by the subclass

    def __init__(
        self,
        api_key: str,
        *,
        commands_url: str = COMMANDS_URL,
        queries_url: str = QUERIES_URL,
        timeout: float | httpx.Timeout = TIMEOUT_S,
        retry: RetryPolicy | None = None,
        read_your_writes: bool = True,
        headers: Mapping[str, str] | None = None,
        transport: TransportT | None = None,
        sleep: Callable[[float], SleepT] | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """`api_key`: a key of `agentlog keys create` (writer to write; any role reads).
        `timeout`: per attempt (httpx); `retry`: RetryPolicy() unless given (NO_RETRIES to turn
        retries off); `read_your_writes`: queries wait until this client's writes are visible;
        `headers`: sent on every request (e.g. X-Correlation-Id). `transport`, `sleep`, `clock`
        and `jitter` are for tests (httpx.MockTransport, a fake sleep and clock)."""
        self._core = ClientCore(
            api_key,
            commands_url=commands_url,
            queries_url=queries_url,
            retry=retry or RetryPolicy(),
            read_your_writes=read_your_writes,
            headers=headers,
            clock=clock,
            jitter=jitter,
        )
        self._sleep: Callable[[float], Any] = sleep or self._default_sleep
        self._http = self._open(transport, timeout)

    def _open(self, transport: TransportT | None, timeout: float | httpx.Timeout) -> Any:
        raise NotImplementedError
