"""The sans-I/O core both clients share: a Call in, httpx.Requests out; answers and failures in,
a result, a typed error or "wait, then try again" out. It never sends and never sleeps; the sync
and async clients do, with the same core, so no method's logic exists twice.

Invariants: every request carries the API key and the call's own headers (its one Idempotency-Key
for all attempts); a query carries this client's read-your-writes bound unless the caller set
one; a successful write moves that bound; the retry decision is RetryPolicy's alone (retry.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Generic, TypeVar

import httpx

from agentlog.client.calls import Call
from agentlog.client.consistency import ReadYourWrites
from agentlog.client.errors import ConnectionFailedError, ServerError, problem_error
from agentlog.client.models import WriteResult
from agentlog.client.retry import RetryPolicy, retriable_failure, retriable_status, retry_after_s

T = TypeVar("T")
logger = logging.getLogger("agentlog.client")
USER_AGENT = "agentlog-client/1"


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True, slots=True)
class Wait:
    delay_s: float


def _json_default(value: object) -> str:
    """Dates and times as ISO 8601 (a naive one goes as it is, and the API refuses it by name)."""
    if isinstance(value, date | time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ClientCore:
    def __init__(
        self,
        api_key: str,
        *,
        commands_url: str,
        queries_url: str,
        retry: RetryPolicy,
        read_your_writes: bool,
        headers: Mapping[str, str] | None,
        clock: Callable[[], float],
        jitter: Callable[[], float],
        wall_clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._urls = {"commands": commands_url.rstrip("/"), "queries": queries_url.rstrip("/")}
        self._headers = {"User-Agent": USER_AGENT, **(headers or {}), "Authorization": f"Bearer {api_key}"}
        self.retry = retry
        self.tracker = ReadYourWrites() if read_your_writes else None
        self.clock = clock
        self.jitter = jitter
        self.wall_clock = wall_clock

    def urls(self) -> tuple[str, ...]:
        return tuple(self._urls.values())

    def request(self, call: Call[Any]) -> httpx.Request:
        headers = {**self._headers, **call.headers}
        content = None
        if call.method != "GET":
            headers["Content-Type"] = call.content_type or "application/json"
            # NaN and Infinity are not JSON: refused here rather than sent for a 422
            content = json.dumps(
                call.json if call.json is not None else {},
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
                default=_json_default,
            )
        return httpx.Request(
            call.method,
            self._urls[call.api] + call.path,
            params=self._params(call),
            headers=headers,
            content=content.encode() if content is not None else None,
        )

    def _params(self, call: Call[Any]) -> dict[str, Any]:
        params = dict(call.params)
        if self.tracker is None or call.reads is None:
            return params
        if call.reads == "session" and call.session_id is not None and "min_version" not in params:
            version = self.tracker.min_version(call.session_id)
            if version is not None:
                params["min_version"] = version
        elif call.reads == "tenant" and "min_position" not in params:
            position = self.tracker.min_position()
            if position is not None:
                params["min_position"] = position
        return params

    def exchange(self, call: Call[T]) -> Exchange[T]:
        return Exchange(self, call)

    def remember(self, value: object) -> None:
        if self.tracker is not None and isinstance(value, WriteResult):
            self.tracker.record(value)


class Exchange(Generic[T]):
    """The attempts of one logical call: the sender asks it for each request and reports each
    answer or failure; it says what comes next."""

    def __init__(self, core: ClientCore, call: Call[T]) -> None:
        self._core = core
        self.call = call
        self.attempts = 0
        self._started = core.clock()

    def request(self) -> httpx.Request:
        self.attempts += 1
        return self._core.request(self.call)

    def answered(self, response: httpx.Response) -> Done[T] | Wait:
        if response.is_success:
            value = self._parse(response)
            self._core.remember(value)
            return Done(value)
        retry_after = retry_after_s(response.headers.get("retry-after"), self._core.wall_clock())
        error = problem_error(response, retry_after)
        if retriable_status(response.status_code):
            wait = self._wait(retry_after, error)
            if wait is not None:
                return wait
        raise error

    def failed(self, exc: httpx.TransportError) -> Wait:
        """After a send that got no answer; raise ConnectionFailedError when it is final."""
        wait = self._wait(None, exc) if retriable_failure(exc) else None
        if wait is None:
            raise ConnectionFailedError(
                f"{self.call.method} {self.call.path}: no answer after {self.attempts} attempt(s): {exc!r}",
                attempts=self.attempts,
            ) from exc
        return wait

    def _wait(self, retry_after: float | None, cause: object) -> Wait | None:
        elapsed = self._core.clock() - self._started
        delay = self._core.retry.delay(
            attempts=self.attempts, elapsed_s=elapsed, retry_after_s=retry_after, draw=self._core.jitter()
        )
        if delay is None:
            return None
        logger.info(
            "%s %s: attempt %d failed (%s); retrying in %.2f s",
            self.call.method,
            self.call.path,
            self.attempts,
            cause,
            delay,
        )
        return Wait(delay)

    def _parse(self, response: httpx.Response) -> T:
        try:
            return self.call.parse(response)
        except ValueError as exc:  # not JSON, or not the contract's shape (pydantic's error is one)
            raise ServerError(
                response.status_code,
                {"code": "invalid_answer", "detail": f"the answer is not what the API promises: {exc}"},
            ) from exc
