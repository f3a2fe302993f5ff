"""Per-API-key rate limits: one token bucket per key, sized by the limit of the key's tenant.

Invariant: within one API process a key is served at most `burst` requests at once and `per_s`
requests per second on average; a request over that raises RateLimitedError (429 `rate_limited`)
whose Retry-After is the whole seconds until the bucket holds a token again (rounded up, at least 1).
A refused request takes no token, so a client that retries after Retry-After is served. A limit of
0 per second is no limit. Buckets live in the process: with N API processes a key may get up to N
times its limit (documented in docs/architecture.md).

The check runs once per authenticated request: a dict lookup and arithmetic on the monotonic clock,
no lock (asyncio runs it without a switch) and no allocation but the clock's float.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from agentlog.edge.errors import RateLimitedError
from agentlog.edge.problems import problem_response

MAX_BUCKETS = 100_000  # past this many keys the buckets start over: memory stays bounded


class TenantRateLimit(BaseModel):
    """One tenant's limit in the settings' per-tenant map: {"per_s": 5, "burst": 20}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_s: float = Field(ge=0, description="requests per second per key; 0 = unlimited")
    burst: int = Field(default=0, ge=0, description="requests at once; 0 = one second's worth (at least 1)")


@dataclass(frozen=True, slots=True)
class RateLimit:
    per_s: float
    burst: float

    @classmethod
    def of(cls, per_s: float, burst: int) -> RateLimit | None:
        """The limit for these settings, or None for unlimited (a rate of 0)."""
        if per_s <= 0:
            return None
        return cls(per_s, float(burst or max(1, math.ceil(per_s))))


class TokenBucket:
    """`burst` tokens, refilled at `per_s` a second; a request takes one."""

    __slots__ = ("limit", "tokens", "updated")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.tokens = limit.burst
        self.updated = now

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else the seconds until one is back (nothing taken)."""
        limit = self.limit
        tokens = self.tokens + (now - self.updated) * limit.per_s
        if tokens > limit.burst:
            tokens = limit.burst
        self.updated = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / limit.per_s


class RateLimiter:
    """The buckets of one API process, keyed by API key id."""

    def __init__(
        self,
        default: RateLimit | None,
        by_tenant: Mapping[str, RateLimit | None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self._default = default
        self._by_tenant = dict(by_tenant or {})
        self._clock = clock
        self._max_buckets = max_buckets
        # key id -> its bucket, or None for a key whose tenant is unlimited (looked up once)
        self._buckets: dict[str, TokenBucket | None] = {}

    @classmethod
    def from_settings(cls, per_s: float, burst: int, by_tenant: Mapping[str, TenantRateLimit]) -> RateLimiter | None:
        """None when no tenant has a limit: then nothing is checked at all."""
        default = RateLimit.of(per_s, burst)
        tenants = {tenant: RateLimit.of(limit.per_s, limit.burst) for tenant, limit in by_tenant.items()}
        if default is None and not any(tenants.values()):
            return None
        return cls(default, tenants)

    def check(self, key_id: str, tenant: str) -> None:
        """Take a token of `key_id`'s bucket, or raise RateLimitedError."""
        now = self._clock()
        try:
            bucket = self._buckets[key_id]
        except KeyError:
            bucket = self._new_bucket(key_id, tenant, now)
        if bucket is None:
            return
        wait_s = bucket.take(now)
        if wait_s:
            limit = bucket.limit
            raise RateLimitedError(
                f"this API key is over its rate limit of {limit.per_s:g} requests per second "
                f"(burst {limit.burst:g}); retry after the Retry-After seconds",
                retry_after_s=max(1, math.ceil(wait_s)),
                limit_per_s=limit.per_s,
                burst=int(limit.burst),
            )

    def _new_bucket(self, key_id: str, tenant: str, now: float) -> TokenBucket | None:
        if len(self._buckets) >= self._max_buckets:
            self._buckets.clear()  # rare; the cost is a fresh burst for the keys seen next
        limit = self._by_tenant.get(tenant, self._default)  # an override of None: unlimited
        bucket = None if limit is None else TokenBucket(limit, now)
        self._buckets[key_id] = bucket
        return bucket


async def rate_limited_response(request: Request, exc: Exception):
    """The exception handler: 429 problem+json with the bucket's Retry-After."""
    assert isinstance(exc, RateLimitedError)
    return problem_response(exc.status, exc.problem(), {"Retry-After": str(exc.extra["retry_after_s"])})
