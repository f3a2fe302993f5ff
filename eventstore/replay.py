"""Time travel over one session: fold its recorded events to a target, or step through them.

Invariant: the state replay shows at version N is `state.fold` of events 1..N — the same fold the
command side decides on — whatever the source (Postgres or the Kafka topic). Sources may deliver
duplicates and out-of-order records (Kafka is at least once), so events are deduplicated by event
id and ordered by version first, and a missing version is an error rather than a silently wrong
state. Everything here is pure: reading the events is the caller's job (agentlog/cli/replay_sources.py).

Targets: the end, `version` N, `time` T (the last event recorded at or before T), or `checkpoint`
NAME (up to and including the last CheckpointSaved with that name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from eventstore.envelope import RecordedEvent
from eventstore.errors import ReplaySourceIncompleteError, ReplayTargetError, SessionNotFoundError
from eventstore.events import CheckpointSaved
from eventstore.registry import decode
from eventstore.snapshot_diff import SnapshotDiff, diff_snapshots
from eventstore.state import SessionState, evolve, fold

Progress = Callable[[int, int], None]  # (events applied, events to apply)
TargetKind = Literal["end", "version", "time", "checkpoint"]


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind = "end"
    value: int | datetime | str | None = None

    def describe(self) -> str:
        if self.kind == "end":
            return "the last event"
        if self.kind == "time":
            return f"time {self.value.isoformat()}"  # type: ignore[union-attr]
        return f"{self.kind} {self.value}"

    def to_json(self) -> dict[str, Any]:
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        return {"kind": self.kind, "value": value}


@dataclass(frozen=True, slots=True)
class Replayed:
    """The outcome of a replay: the state at `version`, of a session that has `last_version`."""

    state: SessionState
    version: int
    last_version: int
    last_event: RecordedEvent


@dataclass(frozen=True, slots=True)
class Step:
    event: RecordedEvent
    before: dict[str, Any]
    after: dict[str, Any]
    diff: SnapshotDiff


def parse_time(text: str) -> datetime:
    """An ISO 8601 instant; one without an offset is taken as UTC (the store records UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReplayTargetError(
            f"--at {text!r} is not an ISO 8601 time (e.g. 2025-03-01T12:00:00Z)", field="at"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def ordered(events: Iterable[RecordedEvent], *, session_id: str) -> list[RecordedEvent]:
    """Events once each, in version order, from version 1 without a gap; raises otherwise."""
    by_id: dict[Any, RecordedEvent] = {}
    for event in events:
        by_id.setdefault(event.event_id, event)
    result = sorted(by_id.values(), key=lambda e: e.version)
    if not result:
        raise SessionNotFoundError(f"session {session_id!r} not found", session_id=session_id)
    for expected, event in enumerate(result, start=1):
        if event.version != expected:
            what = "two events" if event.version < expected else f"version {expected} is missing"
            raise ReplaySourceIncompleteError(
                f"session {session_id!r}: {what} at version {event.version}; the source does not "
                "hold the whole session (for Kafka: has the relay published it yet?)",
                session_id=session_id,
                version=expected,
            )
    return result


def resolve(events: Sequence[RecordedEvent], target: Target) -> int:
    """How many of `events` (ordered, from version 1) the target includes: its version."""
    last = len(events)
    if target.kind == "end":
        return last
    if target.kind == "version":
        return _resolve_version(last, int(target.value))  # type: ignore[arg-type]
    if target.kind == "time":
        return _resolve_time(events, target.value)  # type: ignore[arg-type]
    return resolve_checkpoint(events, str(target.value))


def _resolve_version(last: int, version: int) -> int:
    if version < 1 or version > last:
        raise ReplayTargetError(
            f"--to-version {version} is outside the session, which has versions 1 to {last}",
            field="to_version",
            last_version=last,
        )
    return version


def _resolve_time(events: Sequence[RecordedEvent], moment: datetime) -> int:
    version = 0
    for event in events:
        if event.recorded_at > moment:
            break  # recorded_at follows version order: one stream appends under one lock
        version = event.version
    if version == 0:
        raise time_before_session(moment, events[0].recorded_at)
    return version


def time_before_session(moment: datetime, first_recorded_at: datetime) -> ReplayTargetError:
    """The error for `--at` before a session's first event (replay, blame and context alike)."""
    return ReplayTargetError(
        f"--at {moment.isoformat()} is before the session's first event ({first_recorded_at.isoformat()})",
        field="at",
        first_recorded_at=first_recorded_at.isoformat(),
    )


def resolve_checkpoint(events: Iterable[RecordedEvent], name: str) -> int:
    """The version of the last CheckpointSaved named `name` among `events` (in version order;
    events of other types are skipped, so a reader may pass the checkpoints alone)."""
    found, names = 0, []
    for event in events:
        if event.type == CheckpointSaved.TYPE:
            checkpoint = decode(event)
            assert isinstance(checkpoint, CheckpointSaved)  # the registry decodes a type to its model
            names.append(checkpoint.name)
            if checkpoint.name == name:
                found = event.version
    if not found:
        known = ", ".join(dict.fromkeys(names)) or "none"
        raise ReplayTargetError(
            f"no checkpoint named {name!r} in this session (checkpoints: {known})",
            field="to_checkpoint",
            checkpoints=list(dict.fromkeys(names)),
        )
    return found


def replay(events: Sequence[RecordedEvent], target: Target = Target(), *, progress: Progress | None = None) -> Replayed:
    """The state at `target`; `events` as returned by `ordered`."""
    version = resolve(events, target)
    state = fold(events[:version], progress=(lambda done: progress(done, version)) if progress else None)
    return Replayed(state, version, len(events), events[version - 1])


def steps(
    events: Sequence[RecordedEvent], target: Target = Target(), *, progress: Progress | None = None
) -> Iterator[Step]:
    """Each event up to `target` with the state snapshot before and after it and their diff."""
    version = resolve(events, target)
    return steps_from(SessionState(), events[:version], progress=progress, last=version)


def steps_from(
    state: SessionState,
    events: Iterable[RecordedEvent],
    *,
    progress: Progress | None = None,
    last: int = 0,
) -> Iterator[Step]:
    """Each of `events` (the ones right after `state`, in version order) with the state snapshot
    before and after it and their diff; `last` is the version progress counts to."""
    before = state.to_snapshot()
    for event in events:
        state = evolve(state, event)
        after = state.to_snapshot()
        yield Step(event, before, after, diff_snapshots(before, after))
        if progress:
            progress(event.version, last)
        before = after
