"""The command handler: load -> decide -> append, one session at a time, in one direction.

Invariant: a command is decided on the session's state at the version it is appended after
(the append is conditional on that version), so two writers can never both act on a stale state.
The store loads the state (EventStore.load_state); deciding folds the events once
(commands.decide.Decision) and that state is the snapshot appended. Without If-Match the caller
asked for "append at the end": a lost race is retried on fresh state, with jittered backoff, until
a time budget (not an attempt count) runs out, so N writers of one session all land; with If-Match
(or NO_STREAM, as fork uses) a conflict is the caller's 409. A request with an Idempotency-Key gets
its first answer again, however it raced, and appends nothing the second time; its key is looked
up in the same statement that loads the state (EventStore.load_for_write), and again only after a
lost race. Refused commands,
and commands whose new state would exceed the state size limit, write nothing. With a StateCache
(the command API has one), a command on a session this handler appended last is decided on the
state it appended, and its append, conditional on that version, is the check: one round trip; a
conflict, refusal or no-op on a cached state is decided again on a fresh read, so answers are the
same as without it. The handler knows no HTTP: the HTTP layer picks the status.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from agentlog.telemetry import TRACING
from commands.decide import Decision, decide_many
from commands.models import Command
from commands.state_cache import CachedState, StateCache
from eventstore.errors import (
    AgentlogError,
    ConcurrencyError,
    IdempotencyKeyReusedError,
    StreamAlreadyExistsError,
)
from eventstore.events import Event
from eventstore.positions import NO_STREAM, ExpectedState
from eventstore.pricing import DEFAULT_TABLE, PriceTable
from eventstore.registry import to_stored
from eventstore.store import AppendResult, EventStore, IdempotencyRecord, StoredAnswer

logger = logging.getLogger(__name__)

RETRY_BUDGET_S = 10.0  # how long an If-Match-less write keeps retrying lost races
BACKOFF_S = 0.002  # first backoff ceiling; doubles per lost round up to BACKOFF_CAP_S
BACKOFF_CAP_S = 0.05
MAX_STATE_BYTES = 1024 * 1024  # a session's snapshot JSON; the default of AGENTLOG_COMMANDS_MAX_STATE_BYTES


class StateTooLargeError(AgentlogError):
    """The state a command would leave exceeds the session state limit; nothing was written."""

    code = "state_too_large"
    status = 422


@dataclass(frozen=True, slots=True)
class CommandRequest:
    tenant: str
    session_id: str
    commands: Sequence[Command]
    expected_version: int | ExpectedState | None = None  # If-Match; NO_STREAM for a new stream
    idempotency_key: str | None = None
    request_hash: str = ""
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CommandAnswer:
    result: AppendResult  # the one source of the body {session_id, version, position, event_ids}
    replayed: bool = False  # answered from the idempotency record
    events: Sequence[Event] = ()  # what this request appended (none for a replay or a no-op)

    @property
    def body(self) -> dict[str, Any]:
        return self.result.body()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


class CommandHandler:
    """Runs commands against one EventStore; `clock` and `new_id` are injectable for tests."""

    def __init__(
        self,
        store: EventStore,
        *,
        clock: Callable[[], datetime] = _utc_now,
        new_id: Callable[[], str] = _new_id,
        retry_budget_s: float = RETRY_BUDGET_S,
        max_state_bytes: int = MAX_STATE_BYTES,
        prices: PriceTable = DEFAULT_TABLE,
        cache: StateCache | None = None,
    ) -> None:
        """`cache`: the states this handler appended last, to decide the next command on without
        reading the session back (commands/state_cache.py); None reads every time."""
        self._store = store
        self._cache = cache
        self._clock = clock
        self._new_id = new_id
        self._retry_budget_s = retry_budget_s
        self._max_state_bytes = max_state_bytes
        self._prices = prices

    async def handle(self, request: CommandRequest) -> CommandAnswer:
        retries = request.expected_version is None
        deadline = time.monotonic() + self._retry_budget_s
        lost = 0
        while True:
            try:
                return await self._attempt(request)
            except ConcurrencyError:
                # The race may have been lost to a twin of this very request: answer as it did.
                earlier = await self._earlier_answer(request)
                if earlier is not None:
                    return earlier
                if not retries or time.monotonic() >= deadline:
                    raise
                lost += 1
                logger.debug("retrying %s after a version conflict", request.session_id)
                # Full jitter spreads the losers out so the next round is not the same pile-up.
                ceiling = min(BACKOFF_CAP_S, BACKOFF_S * 2 ** min(lost, 10))
                await asyncio.sleep(random.uniform(0, ceiling))

    async def _attempt(self, request: CommandRequest) -> CommandAnswer:
        cache = self._cache
        if cache is not None and request.idempotency_key is None:
            cached = cache.take(request.tenant, request.session_id)
            if cached is not None:
                answer = await self._attempt_on(cached, request)
                if answer is not None:
                    return answer
                cache.stale_hit()  # decided again below, on what the database holds
        # One read: the state to decide on and, for a keyed request, its earlier answer (a repeat
        # is answered before deciding, as a repeat of a close must not meet a closed session).
        basis = await self._store.load_for_write(request.tenant, request.session_id, request.idempotency_key)
        if basis.earlier is not None:
            return _replay(basis.earlier, request)
        state, version, position = basis.state, basis.version, basis.position
        _check_expected(request, version)
        decision = decide_many(request.commands, state, now=self._clock(), new_id=self._new_id, prices=self._prices)
        if not decision.events and request.idempotency_key is None:
            if self._cache is not None and version:  # what was read is the session's: keep it
                size = len(orjson.dumps(state.to_snapshot(share=True, compact=True)))
                self._cache.put(request.tenant, request.session_id, CachedState(state, version, position, size))
            return CommandAnswer(AppendResult(request.session_id, version, position))
        return await self._append(request, decision, version, self._encode(decision, request.commands))

    async def _attempt_on(self, cached: CachedState, request: CommandRequest) -> CommandAnswer | None:
        """The command decided on the state this process appended last, if that state is still the
        session's (the append is conditional on its version); None when it is not, or when the
        answer would not be an append (a refusal, a no-op, another If-Match): those are only
        given on a fresh read (commands/state_cache.py)."""
        if request.expected_version is not None and request.expected_version != cached.version:
            return None
        try:
            decision = decide_many(
                request.commands, cached.state, now=self._clock(), new_id=self._new_id, prices=self._prices
            )
            if not decision.events:
                return None
            snapshot = self._encode(decision, request.commands)
        except Exception:  # decided again on a fresh read, which raises it again if it still holds
            return None
        try:
            return await self._append(request, decision, cached.version, snapshot)
        except ConcurrencyError:
            return None

    def _encode(self, decision: Decision, commands: Sequence[Command]) -> bytes:
        """The new state's snapshot, encoded once, measured, and passed to the append as it is."""
        snapshot = orjson.dumps(decision.state.to_snapshot(share=True, compact=True))
        self._check_size(snapshot, commands)
        return snapshot

    async def _append(
        self, request: CommandRequest, decision: Decision, version: int, snapshot: bytes
    ) -> CommandAnswer:
        idempotency = None
        if request.idempotency_key is not None:
            idempotency = IdempotencyRecord(request.idempotency_key, request.request_hash)
        # Tracing on: a span around the append, whose context the outbox rows keep (the relay continues it).
        with _append_span(request.session_id, len(decision.events)) as traceparent:
            result = await self._store.append(
                request.tenant,
                request.session_id,
                [to_stored(e) for e in decision.events],
                expected_version=NO_STREAM if request.expected_version is NO_STREAM else version,
                metadata=request.metadata,
                new_state=snapshot,
                new_status=decision.state.status,
                idempotency=idempotency,
                traceparent=traceparent,
            )
        if self._cache is not None and decision.events:
            entry = CachedState(decision.state, result.version, result.position, len(snapshot))
            self._cache.put(request.tenant, request.session_id, entry)
        return CommandAnswer(result, events=decision.events)

    def _check_size(self, snapshot: bytes, commands: Sequence[Command]) -> None:
        size = len(snapshot)
        if size <= self._max_state_bytes:
            return
        raise StateTooLargeError(
            f"the session state would be {size} bytes, over the limit of {self._max_state_bytes}; nothing was written",
            errors=[
                {"field": field, "reason": "the session state would exceed its size limit"}
                for field in _grown_fields(commands)
            ],
            limit_bytes=self._max_state_bytes,
        )

    async def _earlier_answer(self, request: CommandRequest) -> CommandAnswer | None:
        if request.idempotency_key is None:
            return None
        stored = await self._store.find_idempotent(request.tenant, request.idempotency_key)
        return None if stored is None else _replay(stored, request)


def _append_span(session_id: str, events: int) -> AbstractContextManager[str | None]:
    if not TRACING.on:
        return nullcontext(None)
    from agentlog.telemetry.spans import append_span

    return append_span(session_id, events)


def _check_expected(request: CommandRequest, version: int) -> None:
    expected = request.expected_version
    if expected is NO_STREAM:
        if version != 0:
            raise StreamAlreadyExistsError(f"session {request.session_id!r} already exists", current_version=version)
    elif expected is not None and expected != version:
        raise ConcurrencyError(
            f"session {request.session_id!r} is at version {version}, not {expected}", current_version=version
        )


def _grown_fields(commands: Sequence[Command]) -> list[str]:
    """The fields of the request that add to the state: the sections patched, else the state."""
    fields = [f"state.{c.section}" for c in commands if hasattr(c, "section")]
    return fields or ["state"]


def _replay(stored: StoredAnswer, request: CommandRequest) -> CommandAnswer:
    if stored.request_hash != request.request_hash:
        raise IdempotencyKeyReusedError(
            "this Idempotency-Key was used for a different request; use a new key",
            idempotency_key=request.idempotency_key,
            # Like every 422, it names the field: here a header (as an invalid If-Match does).
            errors=[{"field": "header.Idempotency-Key", "reason": "already used for a different request"}],
        )
    return CommandAnswer(stored.result, replayed=True)


__all__ = ["CommandAnswer", "CommandHandler", "CommandRequest", "StateTooLargeError"]
