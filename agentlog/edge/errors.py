"""Errors only the HTTP edge raises (authentication, roles, body size, media type).

Invariant: each is an eventstore.errors.AgentlogError, so the one problem+json mapping of
agentlog.edge.problems answers them with their stable code and status like any other error.
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
