"""The command handler: load -> decide -> append, one session at a time.

Invariant: a command is decided on the session's state at the version it is appended after
(the append is conditional on that version), so two writers can never both act on a stale state.
Without If-Match a lost race is retried on fresh state a few times; with If-Match it is the
caller's 409. A request with an Idempotency-Key gets its first answer again, however it raced,
and appends nothing the second time. Refused commands write nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from commands.decide import decide_many
from commands.models import Command
from eventstore.errors import (
    ConcurrencyError,
    IdempotencyKeyReusedError,
    SnapshotIncompatibleError,
)
from eventstore.registry import to_stored
from eventstore.state import SessionState, fold
from eventstore.store import EventStore, IdempotencyRecord, StoredAnswer

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 20  # each round of a race has one winner: N writers at once need up to N rounds
BACKOFF_S = 0.002


@dataclass(frozen=True, slots=True)
class CommandRequest:
    tenant: str
    session_id: str
    commands: Sequence[Command]
    expected_version: int | None = None  # If-Match
    idempotency_key: str | None = None
    request_hash: str = ""
    success_status: int = 200
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CommandAnswer:
    status_code: int
    body: dict[str, Any]  # {session_id, version, position, event_ids}
    replayed: bool = False  # answered from the idempotency record


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _new_id() -> str:
    return uuid.uuid4().hex


class CommandHandler:
    """Runs commands against one EventStore; `clock` and `new_id` are injectable for tests."""

    def __init__(self, store: EventStore, *, clock: Callable[[], datetime] = _utc_now,
                 new_id: Callable[[], str] = _new_id, max_attempts: int = MAX_ATTEMPTS) -> None:
        self._store = store
        self._clock = clock
        self._new_id = new_id
        self._max_attempts = max_attempts

    async def handle(self, request: CommandRequest) -> CommandAnswer:
        if request.idempotency_key is not None:
            earlier = await self._earlier_answer(request)
            if earlier is not None:
                return earlier
        attempts = 1 if request.expected_version is not None else self._max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._attempt(request)
            except ConcurrencyError:
                # The race may have been lost to a twin of this very request: answer as it did.
                earlier = await self._earlier_answer(request)
                if earlier is not None:
                    return earlier
                if attempt == attempts:
                    raise
                logger.debug("retrying %s after a version conflict", request.session_id)
                # Jitter spreads the losers out so the next round is not the same pile-up.
                await asyncio.sleep(random.uniform(0, BACKOFF_S * min(attempt, 5)))
        raise AssertionError("unreachable")

    async def _attempt(self, request: CommandRequest) -> CommandAnswer:
        state, version, position = await self._load(request.tenant, request.session_id)
        if request.expected_version is not None and request.expected_version != version:
            raise ConcurrencyError(
                f"session {request.session_id!r} is at version {version}, "
                f"not {request.expected_version}", current_version=version)
        events = decide_many(request.commands, state, now=self._clock(), new_id=self._new_id)
        if not events and request.idempotency_key is None:
            body = {"session_id": request.session_id, "version": version,
                    "position": position, "event_ids": []}
            return CommandAnswer(request.success_status, body)
        new_state = fold(events, state)
        idempotency = None
        if request.idempotency_key is not None:
            idempotency = IdempotencyRecord(
                request.idempotency_key, request.request_hash, request.success_status)
        result = await self._store.append(
            request.tenant, request.session_id, [to_stored(e) for e in events],
            expected_version=version, metadata=request.metadata, new_state=new_state.to_snapshot(),
            new_status=new_state.status, idempotency=idempotency,
        )
        return CommandAnswer(request.success_status, result.body())

    async def _load(self, tenant: str, session_id: str) -> tuple[SessionState, int, int]:
        loaded = await self._store.load(tenant, session_id)
        if loaded is None:
            return SessionState.new(session_id, tenant), 0, 0
        try:
            state = SessionState.from_snapshot(loaded.state)
        except SnapshotIncompatibleError:
            # A snapshot of an older format: the log is the truth, fold it once.
            events = await self._store.read_stream(tenant, session_id, to_version=loaded.version)
            state = fold(events, SessionState.new(session_id, tenant))
        return state, loaded.version, loaded.position

    async def _earlier_answer(self, request: CommandRequest) -> CommandAnswer | None:
        if request.idempotency_key is None:
            return None
        stored = await self._store.find_idempotent(request.tenant, request.idempotency_key)
        return None if stored is None else _replay(stored, request)


def _replay(stored: StoredAnswer, request: CommandRequest) -> CommandAnswer:
    if stored.request_hash != request.request_hash:
        raise IdempotencyKeyReusedError(
            "this Idempotency-Key was used for a different request; use a new key",
            idempotency_key=request.idempotency_key)
    return CommandAnswer(stored.status_code, stored.body, replayed=True)


__all__ = ["CommandAnswer", "CommandHandler", "CommandRequest"]
