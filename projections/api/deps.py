"""What the query API's handlers receive through `Depends`: the caller and the read resources.

Invariant: the tenant of every read comes from the verified API key (any role may read); the
read-your-writes wait is bounded by the service's max_wait_ms whatever the client asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Path, Query, Request

from agentlog.edge.auth import authenticate
from agentlog.edge.keys import Principal
from eventstore.ids import ID_MAX_LENGTH, ID_PATTERN
from projections.api.waiting import ProjectionWaiter
from projections.settings import QueriesSettings

BIGINT_MAX = 2**63 - 1

# The read-your-writes bound every read of the read models takes (Reads.wait).
MinVersion = Annotated[
    int | None, Query(ge=1, le=BIGINT_MAX, description="wait until this session is projected up to this version")
]
MinPosition = Annotated[
    int | None,
    Query(ge=1, le=BIGINT_MAX, description="wait until the event at this global position (one of yours) is projected"),
]
WaitMs = Annotated[int | None, Query(ge=0, le=30_000, description="how long to wait (default 5000)")]


@dataclass
class Reads:
    pool: asyncpg.Pool
    projector: str
    waiter: ProjectionWaiter
    settings: QueriesSettings

    async def wait(
        self,
        tenant: str,
        session_id: str | None,
        min_version: int | None,
        min_position: int | None,
        wait_ms: int | None,
    ) -> None:
        """Block until the asked version/position is projected, or raise projection_behind."""
        if min_version is None and min_position is None:
            return
        timeout_s = min(self.settings.default_wait_ms if wait_ms is None else wait_ms, self.settings.max_wait_ms) / 1000
        if min_position is not None:
            await self.waiter.wait_for_position(tenant, min_position, timeout_s)
        if min_version is not None and session_id is not None:
            await self.waiter.wait_for_version(tenant, session_id, min_version, timeout_s)


async def principal(request: Request) -> Principal:
    # the OpenAPI document states the bearer key as the security scheme (agentlog.edge.openapi)
    return await authenticate(request, "reader")


def reads(request: Request) -> Reads:
    return request.app.state.reads


# The {session_id} path parameter of every session route: the log's id rule, checked by FastAPI (422).
SessionId = Annotated[str, Path(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)]
