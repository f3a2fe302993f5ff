"""Who is calling: both APIs authenticate through `authenticate` and the `require(role)` dependency.

Invariant: the verifier lives at `app.state.verifier` (set by each app's lifespan); a route guarded
by `require(role)` runs only for a valid key whose role is at least `role`, and the principal is
left at `request.state.principal` for the handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from agentlog.edge.keys import KeyVerifier, Principal


async def authenticate(request: Request, role: str) -> Principal:
    verifier: KeyVerifier = request.app.state.verifier
    principal = (await verifier.verify(request.headers.get("authorization"))).require(role)
    request.state.principal = principal
    return principal


def require(role: str) -> Callable[[Request], Awaitable[Principal]]:
    async def dependency(request: Request) -> Principal:
        return await authenticate(request, role)

    dependency.__name__ = f"require_{role}"
    return dependency
