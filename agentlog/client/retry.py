"""When the client tries a call again, and how long it waits first: pure functions of the attempt
count, the time spent, the answer's Retry-After and a random draw (all passed in, so tests need
no clock and no sleeping).

Invariant: a call is retried only on what may succeed unchanged: no answer (connection refused or
lost, a timeout) or 429/502/503/504; never on another 4xx, which would fail again the same way.
Retries are bounded twice: at most `max_attempts` sends in all, and no wait that would end past
`max_elapsed_s` after the first send. The wait grows exponentially with jitter (half fixed, half
random, so concurrent clients spread out yet every wait has a floor), and is never shorter than
the server's Retry-After. Writes are safe to retry because each logical call keeps one
Idempotency-Key for all its attempts (calls.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a client retries. The defaults ride out a restart of an API of several seconds:
    8 attempts, waits of 0.1-0.2 s doubling up to 2.5-5 s, at most 30 s in all."""

    max_attempts: int = 8
    max_elapsed_s: float = 30.0
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (1: no retries)")
        if min(self.max_elapsed_s, self.initial_backoff_s, self.max_backoff_s) < 0 or self.multiplier < 1:
            raise ValueError("times must be >= 0 and multiplier >= 1")

    def backoff(self, retry: int, draw: float) -> float:
        """The wait before retry number `retry` (1 = the first retry); `draw` is uniform in [0, 1)."""
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (retry - 1))
        return ceiling / 2 + ceiling / 2 * draw

    def delay(self, *, attempts: int, elapsed_s: float, retry_after_s: float | None, draw: float) -> float | None:
        """How long to wait before the next attempt, or None to give up, after `attempts` sends
        that took `elapsed_s` since the first."""
        if attempts >= self.max_attempts:
            return None
        wait = self.backoff(attempts, draw)
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        if elapsed_s + wait > self.max_elapsed_s:
            return None
        return wait


NO_RETRIES = RetryPolicy(max_attempts=1)


def retriable_status(status: int) -> bool:
    return status in RETRY_STATUSES


def retriable_failure(exc: httpx.TransportError) -> bool:
    """No answer that another attempt may get: not a request this client cannot send at all."""
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from `now` (an aware datetime): delta-seconds or an HTTP-date;
    None when absent or unreadable (then the policy's own backoff applies)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
