"""The token bucket and the per-key limiter, on an injected clock (no sleeping, no machine clock)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentlog.edge.errors import RateLimitedError
from agentlog.edge.rate_limit import RateLimit, RateLimiter, TenantRateLimit, TokenBucket
from commands.api.settings import CommandsSettings
from projections.settings import QueriesSettings


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _retry_after(limiter: RateLimiter, key: str = "k1", tenant: str = "t1") -> int | None:
    try:
        limiter.check(key, tenant)
    except RateLimitedError as exc:
        assert exc.status == 429 and exc.code == "rate_limited"
        return exc.extra["retry_after_s"]
    return None


def test_token_bucket_serves_the_burst_at_once_then_refuses_until_refilled() -> None:
    bucket = TokenBucket(RateLimit(per_s=2, burst=3), now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token comes back every 1/2 s
    assert bucket.take(0.25) == pytest.approx(0.25)  # a refusal takes nothing: the wait shrinks
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) == pytest.approx(0.5)


def test_token_bucket_refills_to_its_burst_and_no_further() -> None:
    bucket = TokenBucket(RateLimit(per_s=10, burst=2), now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    # an hour idle gives back the burst, not 36,000 tokens
    assert [bucket.take(3_600.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.take(3_600.0) > 0


def test_token_bucket_holds_its_average_rate_over_a_long_run() -> None:
    bucket = TokenBucket(RateLimit(per_s=5, burst=5), now=0.0)
    served = sum(bucket.take(t / 100) == 0.0 for t in range(10_000))  # 100 requests/s for 100 s
    assert served == 5 + 5 * 100 - 1 or served == 5 + 5 * 100  # the burst, then the rate


def test_rate_limiter_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(per_s=0.25, burst=1), clock=clock)
    assert _retry_after(limiter) is None
    assert _retry_after(limiter) == 4  # a token every 4 s
    clock.now += 3.5
    assert _retry_after(limiter) == 1  # 0.5 s left: rounded up to 1
    fast = RateLimiter(RateLimit(per_s=100, burst=1), clock=clock)
    assert _retry_after(fast) is None
    assert _retry_after(fast) == 1  # 10 ms left: never "Retry-After: 0"


def test_rate_limiter_serves_the_key_again_after_its_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(per_s=0.5, burst=2), clock=clock)
    assert [_retry_after(limiter) for _ in range(2)] == [None, None]
    wait = _retry_after(limiter)
    assert wait == 2
    clock.now += wait - 0.001
    assert _retry_after(limiter) == 1  # not yet
    clock.now += 0.001
    assert _retry_after(limiter) is None


def test_rate_limiter_keeps_one_bucket_per_key_so_one_key_never_spends_another_keys_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(per_s=1, burst=2), clock=clock)
    for _ in range(2):
        limiter.check("runaway", "t1")
    assert _retry_after(limiter, "runaway", "t1") == 1
    assert [_retry_after(limiter, "neighbour", "t1") for _ in range(2)] == [None, None]
    assert [_retry_after(limiter, "other-tenant", "t2") for _ in range(2)] == [None, None]


def test_rate_limiter_per_tenant_override_replaces_the_default_and_zero_means_unlimited() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        RateLimit(per_s=1, burst=1),
        {"strict": RateLimit(per_s=0.1, burst=1), "generous": RateLimit(per_s=100, burst=50), "free": None},
        clock=clock,
    )
    assert [_retry_after(limiter, "a", "strict") for _ in range(2)] == [None, 10]
    assert all(_retry_after(limiter, "b", "generous") is None for _ in range(50))
    assert all(_retry_after(limiter, "c", "free") is None for _ in range(10_000))
    assert [_retry_after(limiter, "d", "default") for _ in range(2)] == [None, 1]


def test_rate_limiter_refusal_names_the_limit_in_the_problem() -> None:
    limiter = RateLimiter(RateLimit(per_s=3, burst=4), clock=FakeClock())
    for _ in range(4):
        limiter.check("k", "t")
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("k", "t")
    problem = caught.value.problem()
    assert problem["code"] == "rate_limited" and problem["status"] == 429
    assert problem["limit_per_s"] == 3 and problem["burst"] == 4 and problem["retry_after_s"] == 1


def test_rate_limiter_bounds_its_buckets_by_starting_over() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(per_s=1, burst=1), clock=clock, max_buckets=3)
    for key in ("a", "b", "c"):
        limiter.check(key, "t")
    assert _retry_after(limiter, "a", "t") == 1
    limiter.check("d", "t")  # the fourth key: the buckets start over
    assert len(limiter._buckets) == 1
    assert _retry_after(limiter, "a", "t") is None


def test_rate_limit_burst_zero_is_one_seconds_worth_and_at_least_one() -> None:
    assert RateLimit.of(0, 10) is None
    assert RateLimit.of(20, 0) == RateLimit(20, 20)
    assert RateLimit.of(0.5, 0) == RateLimit(0.5, 1)
    assert RateLimit.of(20, 5) == RateLimit(20, 5)


def test_rate_limiter_from_settings_is_none_when_no_tenant_is_limited() -> None:
    assert RateLimiter.from_settings(0, 0, {}) is None
    assert RateLimiter.from_settings(0, 0, {"t": TenantRateLimit(per_s=0)}) is None
    only_one = RateLimiter.from_settings(0, 0, {"t": TenantRateLimit(per_s=1, burst=1)})
    assert only_one is not None
    only_one.check("k", "t")
    with pytest.raises(RateLimitedError):
        only_one.check("k", "t")
    for _ in range(100):
        only_one.check("k2", "unlisted")  # the default stays unlimited


@pytest.mark.parametrize("settings_class", [CommandsSettings, QueriesSettings])
def test_rate_limit_settings_default_to_unlimited_and_read_the_per_tenant_map_as_json(
    settings_class, monkeypatch
) -> None:
    defaults = settings_class()
    assert defaults.rate_limit_per_s == 0 and defaults.rate_limit_by_tenant == {}
    assert defaults.max_in_flight > 0
    prefix = "AGENTLOG_COMMANDS_" if settings_class is CommandsSettings else "AGENTLOG_QUERIES_"
    monkeypatch.setenv(prefix + "RATE_LIMIT_PER_S", "20")
    monkeypatch.setenv(prefix + "RATE_LIMIT_BURST", "40")
    monkeypatch.setenv(prefix + "RATE_LIMIT_BY_TENANT", '{"acme": {"per_s": 5, "burst": 10}, "free": {"per_s": 0}}')
    settings = settings_class()
    assert (settings.rate_limit_per_s, settings.rate_limit_burst) == (20, 40)
    assert settings.rate_limit_by_tenant == {
        "acme": TenantRateLimit(per_s=5, burst=10),
        "free": TenantRateLimit(per_s=0),
    }
    monkeypatch.setenv(prefix + "RATE_LIMIT_BY_TENANT", '{"acme": {"per_s": -1}}')
    with pytest.raises(ValidationError):
        settings_class()


def test_state_size_setting_defaults_to_one_mib(monkeypatch) -> None:
    assert CommandsSettings().max_state_bytes == 1024 * 1024
    monkeypatch.setenv("AGENTLOG_COMMANDS_MAX_STATE_BYTES", "65536")
    assert CommandsSettings().max_state_bytes == 65536
