"""Typed errors of agentlog. Each carries a stable `code`, the HTTP status an API maps it to, and,
for infrastructure errors, whether retrying may succeed. APIs map them to problem+json in one place."""

from __future__ import annotations

from typing import Any


class AgentlogError(Exception):
    code = "agentlog_error"
    status = 500
    retriable = False

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        """The application/problem+json body (RFC 9457) for this error."""
        body: dict[str, Any] = {
            "type": f"https://agentlog.dev/problems/{self.code}",
            "title": self.code.replace("_", " "),
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        body.update(self.extra)
        return body


class ValidationProblemError(AgentlogError):
    """Input that is well-formed JSON but says something invalid (field + reason in `errors`)."""

    code = "invalid_input"
    status = 422


class PayloadTooLargeError(AgentlogError):
    code = "payload_too_large"
    status = 413


class AuthenticationError(AgentlogError):
    code = "unauthenticated"
    status = 401


class PermissionDeniedError(AgentlogError):
    code = "forbidden"
    status = 403


class SessionNotFoundError(AgentlogError):
    """Also raised for another tenant's session: its existence is not revealed."""

    code = "session_not_found"
    status = 404


class ConcurrencyError(AgentlogError):
    """The expected version did not match; `current_version` tells the caller where the stream is."""

    code = "version_conflict"
    status = 409


class StreamAlreadyExistsError(ConcurrencyError):
    code = "session_exists"


class RuleViolationError(AgentlogError):
    """A command the session's current state forbids (closed session, no open call, ...)."""

    code = "rule_violation"
    status = 409


class SchemaBehindError(AgentlogError):
    code = "schema_behind"
    status = 503


class InfrastructureError(AgentlogError):
    code = "infrastructure_unavailable"
    status = 503
    retriable = True
