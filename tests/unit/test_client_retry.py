"""The client's retries: what is retried (no answer, 429/502/503/504) and what never is (any other
4xx), the one Idempotency-Key of a logical write across its attempts, Retry-After honoured, and
the bounds in count and time. A fake clock moved only by a fake sleep: exact, and nothing sleeps."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from agentlog.client import (
    NO_RETRIES,
    AuthenticationError,
    ConcurrencyConflictError,
    ConnectionFailedError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProjectionBehindError,
    RateLimitedError,
    RetryPolicy,
    RuleViolationError,
    UnavailableError,
)
from agentlog.client.retry import retry_after_s
from tests.unit.test_client_support import Harness, kind, problem, write_answer  # noqa: F401  (fixture)


def answers(*responses: httpx.Response | Exception):
    """A handler that gives these answers (or raises these errors) in turn, then the last forever."""
    queue = list(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        # a fresh copy each time: a response is read once, and a parameter serves both clients
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return handle


# --- the policy alone ---


def test_retry_policy_backoff_doubles_from_the_initial_wait_up_to_the_cap_with_half_of_it_random() -> None:
    policy = RetryPolicy(initial_backoff_s=0.2, max_backoff_s=1.0, multiplier=2.0)
    assert [policy.backoff(n, draw=0.0) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert [policy.backoff(n, draw=1.0) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_retry_policy_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay(attempts=2, elapsed_s=0, retry_after_s=None, draw=0) is not None
    assert policy.delay(attempts=3, elapsed_s=0, retry_after_s=None, draw=0) is None
    assert NO_RETRIES.delay(attempts=1, elapsed_s=0, retry_after_s=None, draw=0) is None


def test_retry_policy_gives_up_when_the_wait_would_end_past_the_time_budget() -> None:
    policy = RetryPolicy(max_elapsed_s=10, initial_backoff_s=2, max_backoff_s=2)
    assert policy.delay(attempts=1, elapsed_s=8.0, retry_after_s=None, draw=1.0) == 2.0
    assert policy.delay(attempts=1, elapsed_s=8.5, retry_after_s=None, draw=1.0) is None
    assert policy.delay(attempts=1, elapsed_s=0.0, retry_after_s=11, draw=0.0) is None


def test_retry_policy_waits_at_least_retry_after() -> None:
    policy = RetryPolicy(initial_backoff_s=0.2)
    assert policy.delay(attempts=1, elapsed_s=0, retry_after_s=3, draw=0.5) == 3
    assert policy.delay(attempts=1, elapsed_s=0, retry_after_s=0, draw=1.0) == 0.2


def test_retry_policy_refuses_a_policy_without_attempts() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("7", now) == 7.0
    assert retry_after_s("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30.0
    assert retry_after_s("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None


# --- the clients ---


def test_client_write_retried_after_503_and_a_dropped_connection_keeps_one_idempotency_key(kind) -> None:
    harness = Harness(
        kind, answers(problem(503, "infrastructure_unavailable"), httpx.ConnectError("refused"), write_answer())
    )
    result = harness("add_message", "s-1", "user", "hello")
    assert result.version == 1
    assert len(harness.requests) == 3
    assert len(set(harness.keys())) == 1 and harness.keys()[0]
    assert [r.content for r in harness.requests] == [harness.requests[0].content] * 3
    assert len(harness.sleeps) == 2


def test_client_retries_a_timeout_with_the_same_key_and_if_match(kind) -> None:
    harness = Harness(kind, answers(httpx.ReadTimeout("slow"), write_answer(version=5)))
    harness("save_checkpoint", "s-1", "refunded", expected_version=4)
    assert len(harness.requests) == 2
    assert {r.headers["if-match"] for r in harness.requests} == {'"4"'}
    assert len(set(harness.keys())) == 1


def test_client_gives_each_logical_write_its_own_key_unless_given_one(kind) -> None:
    harness = Harness(kind, answers(write_answer()))
    harness("add_message", "s-1", "user", "one")
    harness("add_message", "s-1", "user", "one")
    harness("add_message", "s-1", "user", "one", idempotency_key="my-key-1")
    keys = harness.keys()
    assert keys[0] != keys[1] and keys[2] == "my-key-1"


def test_client_honours_retry_after_of_a_429(kind) -> None:
    harness = Harness(kind, answers(problem(429, "rate_limited", headers={"Retry-After": "7"}), write_answer()))
    harness("add_message", "s-1", "user", "hello")
    assert harness.sleeps == [7.0]
    assert len(harness.requests) == 2


def test_client_raises_rate_limited_with_retry_after_when_it_would_outlast_the_budget(kind) -> None:
    harness = Harness(
        kind,
        answers(problem(429, "rate_limited", headers={"Retry-After": "120"})),
        retry=RetryPolicy(max_elapsed_s=30),
    )
    with pytest.raises(RateLimitedError) as raised:
        harness("add_message", "s-1", "user", "hello")
    assert raised.value.retry_after == 120.0
    assert harness.sleeps == [] and len(harness.requests) == 1


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (problem(400, "malformed_json"), InvalidRequestError),
        (problem(404, "session_not_found"), NotFoundError),
        (problem(409, "version_conflict", current_version=3), ConcurrencyConflictError),
        (problem(409, "session_closed"), RuleViolationError),
        (problem(422, "invalid_input", errors=[{"field": "content", "reason": "too long"}]), InvalidRequestError),
        (problem(401, "unauthenticated"), AuthenticationError),
        (problem(403, "forbidden"), PermissionDeniedError),
    ],
)
def test_client_never_retries_another_4xx(kind, answer, error) -> None:
    harness = Harness(kind, answers(answer))
    with pytest.raises(error):
        harness("add_message", "s-1", "user", "hello")
    assert len(harness.requests) == 1 and harness.sleeps == []


def test_client_stops_after_max_attempts_with_the_last_error(kind) -> None:
    harness = Harness(kind, answers(problem(503, "infrastructure_unavailable")), retry=RetryPolicy(max_attempts=4))
    with pytest.raises(UnavailableError) as raised:
        harness("complete_session", "s-1")
    assert raised.value.status == 503 and raised.value.code == "infrastructure_unavailable"
    assert len(harness.requests) == 4 and len(harness.sleeps) == 3
    assert harness.sleeps == sorted(harness.sleeps)  # the waits grow


def test_client_stops_when_the_next_wait_would_pass_the_time_budget(kind) -> None:
    harness = Harness(
        kind,
        answers(problem(503, "infrastructure_unavailable", headers={"Retry-After": "20"})),
        retry=RetryPolicy(max_attempts=100, max_elapsed_s=30),
    )
    with pytest.raises(UnavailableError):
        harness("add_message", "s-1", "user", "hello")
    assert harness.sleeps == [20.0] and len(harness.requests) == 2


def test_client_without_answers_raises_connection_failed_after_its_attempts(kind) -> None:
    harness = Harness(kind, answers(httpx.ConnectError("refused")), retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ConnectionFailedError) as raised:
        harness("add_message", "s-1", "user", "hello")
    assert raised.value.attempts == 3
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


def test_client_with_no_retries_sends_once(kind) -> None:
    harness = Harness(kind, answers(problem(502, "http_502")), retry=NO_RETRIES)
    with pytest.raises(UnavailableError):
        harness("add_message", "s-1", "user", "hello")
    assert len(harness.requests) == 1


def test_client_retries_a_read_whose_projection_wait_ran_out(kind) -> None:
    session = {"session_id": "s-1", "status": "open", "version": 2}
    behind = problem(504, "projection_behind", headers={"Retry-After": "1"}, wanted_version=2, current_version=1)
    harness = Harness(kind, answers(behind, httpx.Response(200, json=session)))
    assert harness("get_session", "s-1").version == 2
    assert harness.sleeps == [1.0]


def test_client_raises_projection_behind_with_the_versions_when_out_of_attempts(kind) -> None:
    behind = problem(504, "projection_behind", wanted_version=9, current_version=7)
    harness = Harness(kind, answers(behind), retry=NO_RETRIES)
    with pytest.raises(ProjectionBehindError) as raised:
        harness("get_session", "s-1")
    assert (raised.value.wanted_version, raised.value.current_version) == (9, 7)
