"""Errors only the HTTP edge raises (authentication, roles, body size, media type, rate, load).

Invariant: each is an eventstore.errors.AgentlogError, so the one problem+json mapping of
agentlog.edge.problems answers them with their stable code and status like any other error
(a rate-limited answer's Retry-After comes from its bucket: agentlog.edge.rate_limit).
"""

from __future__ import annotations

from eventstore.errors import AgentlogError


class AuthenticationError(AgentlogError):
    code = "unauthenticated"
    status = 401


class PermissionDeniedError(AgentlogError):
    code = "forbidden"
    status = 403


class PayloadTooLargeError(AgentlogError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaTypeError(AgentlogError):
    """A body that says it is not JSON: the APIs take application/json (and merge-patch+json)."""

    code = "unsupported_media_type"
    status = 415


class RateLimitedError(AgentlogError):
    """The API key is over its tenant's rate limit; `retry_after_s` says when a token is back."""

    code = "rate_limited"
    status = 429
    retriable = True


class OverloadedError(AgentlogError):
    """The API process already serves its maximum of requests at once; retry shortly."""

    code = "overloaded"
    status = 503
    retriable = True
