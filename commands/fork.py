"""Fork a session: a new session that starts from another session's state at a version.

Invariant: the fork's first (and only initial) event is SessionForked carrying the source's
`SessionState.to_snapshot()` at exactly `at_version` — folded by the same replay as
`agentlog replay --to-version` — so the fork's state at version 1 is the source's state at that
version (as its own open session). It is a write like every other: a ForkSession command run by
the CommandHandler with expected version NO_STREAM (decided by decide_fork_session, one append,
outbox rows in the same transaction); an existing id is a conflict and nothing is written.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from commands.handler import CommandHandler, CommandRequest
from commands.models import ForkSession
from eventstore.ids import validate_session_id
from eventstore.replay import Replayed, Target, ordered, replay
from eventstore.store import NO_STREAM, AppendResult, EventStore


def new_fork_id() -> str:
    return uuid.uuid4().hex


async def state_at(store: EventStore, tenant: str, session_id: str, version: int) -> Replayed:
    """The source's state at `version`; raises SessionNotFoundError or ReplayTargetError."""
    events = await store.read_stream(tenant, session_id, to_version=max(version, 1))
    return replay(ordered(events, session_id=session_id), Target("version", version))


async def fork_session(
    store: EventStore,
    tenant: str,
    source_session_id: str,
    at_version: int,
    *,
    new_session_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AppendResult:
    """Create the fork and return the append's answer (its session id, version 1, position)."""
    validate_session_id(source_session_id)
    fork_id = validate_session_id(new_session_id or new_fork_id(), field="new_id")
    source = await state_at(store, tenant, source_session_id, at_version)
    command = ForkSession(
        source_session_id=source_session_id,
        source_version=source.version,
        state=source.state.to_snapshot(),
    )
    clock = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    answer = await CommandHandler(store, clock=clock, new_id=new_fork_id).handle(
        CommandRequest(
            tenant=tenant,
            session_id=fork_id,
            commands=[command],
            expected_version=NO_STREAM,
            metadata={"correlation_id": uuid.uuid4().hex, "causation_id": None, "tenant": tenant, **(metadata or {})},
        )
    )
    return answer.result
