"""Who is calling: both APIs authenticate through `authenticate` and the `require(role)` dependency.

Invariant: the verifier lives at `app.state.verifier` (set by each app's lifespan); a route guarded
by `require(role)` runs only for a valid key whose role is at least `role` and that is within its
rate limit (`app.state.rate_limiter`, set by agentlog.edge.install; None = no limits), and the
principal is left at `request.state.principal` for the handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from agentlog.edge.keys import KeyVerifier, Principal
from agentlog.edge.rate_limit import RateLimiter


async def authenticate(request: Request, role: str) -> Principal:
    verifier: KeyVerifier = request.app.state.verifier
    principal = await verifier.verify(request.headers.get("authorization"))
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        limiter.check(principal.key_id, principal.tenant)  # the key, whatever the route's role
    principal.require(role)
    request.state.principal = principal
    return principal


def require(role: str) -> Callable[[Request], Awaitable[Principal]]:
    async def dependency(request: Request) -> Principal:
        return await authenticate(request, role)

    dependency.__name__ = f"require_{role}"
    return dependency
