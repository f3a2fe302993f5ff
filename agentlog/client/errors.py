"""Typed errors of the agentlog client, all under one base, `AgentlogError`.

Invariant: an API's problem+json answer becomes exactly one exception class per stable code
family (invalid request, authentication, permission, not found, version conflict, rule violation,
rate limit, projection behind, unavailable, server error), chosen by the answer's `code` first and
its HTTP status second, so a code added later still lands in the right family; every one carries
the status, code, detail, field errors and the whole problem body. `ConnectionFailedError` is the
one error without an answer: the API could not be reached (or timed out) on every attempt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"


class AgentlogError(Exception):
    """Base of every error the client raises."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """Which part of the request was refused (`body` fields bare, e.g. `content`; headers as
    `header.If-Match`; query parameters by name) and why."""

    field: str
    reason: str


class ConnectionFailedError(AgentlogError):
    """No answer: connection refused or lost, or a timeout, on every attempt the retry policy allowed."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class ProblemError(AgentlogError):
    """An API answered with an error (application/problem+json, RFC 9457)."""

    def __init__(
        self, status: int, body: dict[str, Any], *, retry_after: float | None = None, request_id: str | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.code: str = str(body.get("code") or f"http_{status}")
        self.detail: str = str(body.get("detail") or body.get("title") or "")
        self.errors = tuple(
            FieldError(str(e.get("field", "")), str(e.get("reason", "")))
            for e in body.get("errors") or ()
            if isinstance(e, dict)
        )
        self.retry_after = retry_after
        self.request_id = request_id
        super().__init__(
            f"{status} {self.code}: {self.detail}" + "".join(f"; {e.field}: {e.reason}" for e in self.errors)
        )


class InvalidRequestError(ProblemError):
    """400/413/415/422: the request itself is wrong (a field, a header, its size, a reused key)."""


class AuthenticationError(ProblemError):
    """401: no API key, or one the API does not know (or revoked)."""


class PermissionDeniedError(ProblemError):
    """403: the key's role may not do this (a reader writing)."""


class NotFoundError(ProblemError):
    """404: no such session (also another tenant's), approval or endpoint."""


class ConcurrencyConflictError(ProblemError):
    """409: the session is not at the expected version (If-Match), or already exists.
    `current_version` is where the session is now: reload, decide again, retry with it."""

    @property
    def current_version(self) -> int | None:
        value = self.body.get("current_version")
        return value if isinstance(value, int) else None


class RuleViolationError(ProblemError):
    """409: the session's state forbids the command (closed session, no open call, decided approval)."""


class RateLimitedError(ProblemError):
    """429: over the key's rate; `retry_after` says when to come back."""


class UnavailableError(ProblemError):
    """502/503/504: a dependency is down or the service is saturated; retriable."""


class ProjectionBehindError(UnavailableError):
    """504 projection_behind: a read-your-writes wait ran out before the read models caught up."""

    @property
    def wanted_version(self) -> int | None:
        return self.body.get("wanted_version")

    @property
    def current_version(self) -> int | None:
        return self.body.get("current_version")


class ServerError(ProblemError):
    """500 and other 5xx: a fault of the service, not of the request."""


_BY_CODE: dict[str, type[ProblemError]] = {
    **dict.fromkeys(
        (
            "invalid_input",
            "malformed_json",
            "unsupported_media_type",
            "payload_too_large",
            "idempotency_key_reused",
            "state_too_large",
        ),
        InvalidRequestError,
    ),
    "unauthenticated": AuthenticationError,
    "forbidden": PermissionDeniedError,
    **dict.fromkeys(("session_not_found", "approval_not_found", "not_found"), NotFoundError),
    **dict.fromkeys(("version_conflict", "session_exists", "idempotency_key_taken"), ConcurrencyConflictError),
    "projection_behind": ProjectionBehindError,
    **dict.fromkeys(("infrastructure_unavailable", "schema_behind", "not_ready"), UnavailableError),
}
_BY_STATUS: dict[int, type[ProblemError]] = {
    **dict.fromkeys((400, 413, 415, 422), InvalidRequestError),
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: RuleViolationError,  # a 409 of an unknown code: the contract's other 409 is the state's rules
    429: RateLimitedError,
    **dict.fromkeys((502, 503, 504), UnavailableError),
}


def error_class(status: int, code: str | None) -> type[ProblemError]:
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if status == 409 and code is not None and code.endswith("conflict"):
        return ConcurrencyConflictError
    return _BY_STATUS.get(status, ServerError if status >= 500 else ProblemError)


def problem_error(response: httpx.Response, retry_after: float | None = None) -> ProblemError:
    """The typed error of an error answer; a body that is not a problem (a proxy's HTML page)
    still gives the status's family, with the start of the text as its detail."""
    body = _problem_body(response)
    cls = error_class(response.status_code, body.get("code") if isinstance(body.get("code"), str) else None)
    return cls(response.status_code, body, retry_after=retry_after, request_id=response.headers.get("x-request-id"))


def _problem_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        return body
    return {"status": response.status_code, "detail": response.text[:200] or response.reason_phrase}
