"""problem+json answers become the client's typed errors: one class per stable code family, picked
by code first and status second, each carrying status, code, detail, field errors and the body."""

from __future__ import annotations

import httpx
import pytest

from agentlog.client import (
    AgentlogError,
    AuthenticationError,
    ConcurrencyConflictError,
    FieldError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProblemError,
    ProjectionBehindError,
    RateLimitedError,
    RuleViolationError,
    ServerError,
    UnavailableError,
)
from agentlog.client.errors import problem_error
from tests.unit.test_client_support import Harness, kind, problem  # noqa: F401  (fixture)


@pytest.mark.parametrize(
    ("status", "code", "family"),
    [
        (422, "invalid_input", InvalidRequestError),
        (400, "malformed_json", InvalidRequestError),
        (413, "payload_too_large", InvalidRequestError),
        (415, "unsupported_media_type", InvalidRequestError),
        (422, "idempotency_key_reused", InvalidRequestError),
        (422, "state_too_large", InvalidRequestError),
        (401, "unauthenticated", AuthenticationError),
        (403, "forbidden", PermissionDeniedError),
        (404, "session_not_found", NotFoundError),
        (404, "approval_not_found", NotFoundError),
        (409, "version_conflict", ConcurrencyConflictError),
        (409, "session_exists", ConcurrencyConflictError),
        (409, "session_closed", RuleViolationError),
        (409, "section_owned_by_other_agent", RuleViolationError),
        (409, "a_rule_added_later", RuleViolationError),
        (429, "rate_limited", RateLimitedError),
        (503, "infrastructure_unavailable", UnavailableError),
        (504, "projection_behind", ProjectionBehindError),
        (500, "internal_error", ServerError),
        (418, "teapot", ProblemError),
    ],
)
def test_problem_becomes_the_error_of_its_code_family(status: int, code: str, family: type) -> None:
    error = problem_error(problem(status, code, headers={"X-Request-Id": "r-1"}))
    assert type(error) is family
    assert isinstance(error, AgentlogError)
    assert (error.status, error.code, error.detail, error.request_id) == (status, code, code, "r-1")


def test_conflict_carries_the_current_version() -> None:
    error = problem_error(problem(409, "version_conflict", current_version=7))
    assert isinstance(error, ConcurrencyConflictError)
    assert error.current_version == 7


def test_invalid_input_carries_field_errors_in_the_message_too() -> None:
    errors = [
        {"field": "content", "reason": "must be at most 65536 bytes"},
        {"field": "header.If-Match", "reason": "x"},
    ]
    error = problem_error(problem(422, "invalid_input", errors=errors))
    assert error.errors == (FieldError("content", "must be at most 65536 bytes"), FieldError("header.If-Match", "x"))
    assert "content: must be at most 65536 bytes" in str(error)
    assert error.body["errors"] == errors


def test_an_answer_that_is_not_a_problem_still_gets_its_status_family() -> None:
    error = problem_error(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert isinstance(error, UnavailableError)
    assert (error.code, error.detail) == ("http_502", "<html>Bad Gateway</html>")


def test_a_success_answer_the_contract_does_not_describe_is_a_server_error(kind) -> None:
    harness = Harness(kind, lambda request: httpx.Response(200, json={"unexpected": True}))
    with pytest.raises(ServerError) as raised:
        harness("add_message", "s-1", "user", "hello")
    assert raised.value.code == "invalid_answer"
