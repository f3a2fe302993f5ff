"""Fork a session over HTTP: POST /v1/sessions/{id}/fork {"at_version": N, "new_session_id": ...}.

The fork is the same command as `agentlog fork` (commands/fork.py): SessionForked carrying the
source's state at exactly `at_version`, as version 1 of a new session, decided and appended by
the runner like every write (writer role, tenant scope, Idempotency-Key, metrics). A version the
source does not have is a 422 naming `at_version`; an unknown source is 404; an existing new id
is 409 `session_already_started`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from commands.api.dependencies import Runner, SessionId
from commands.api.routes.writes import write_router
from commands.fork import new_fork_id, state_at
from commands.models import ForkSession
from eventstore.errors import ReplayTargetError, ValidationProblemError
from eventstore.ids import Identifier
from eventstore.store import EventStore

router = write_router("/v1/sessions", "sessions")


class ForkBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at_version: Annotated[int, Field(ge=1, le=2**62)]
    new_session_id: Identifier | None = None  # None: generated


@router.post("/{session_id}/fork", status_code=201)
async def fork_session(session_id: SessionId, body: ForkBody, request: Request, runner: Runner):
    """201 with the fork's {session_id, version 1, position, event_ids}."""
    tenant = request.state.principal.tenant
    try:
        source = await state_at(EventStore(request.app.state.pool), tenant, session_id, body.at_version)
    except ReplayTargetError as exc:
        raise ValidationProblemError(
            exc.detail.replace("--to-version", "at_version"),
            errors=[{"field": "at_version", "reason": f"must be between 1 and {exc.extra.get('last_version')}"}],
        ) from None
    command = ForkSession(source_session_id=session_id, source_version=source.version, state=source.state.to_snapshot())
    fork_id = body.new_session_id or new_fork_id()
    return await runner.run(request, "fork_session", fork_id, [command], success_status=201)
