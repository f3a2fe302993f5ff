"""Fold snapshots written by the projector, off the command path (eventstore/fold_snapshots.py)
and off the read models' path.

Invariant: after each committed batch, every session whose events in it reached a multiple of
`snapshot_every` gets the snapshots it lacks up to its newest version in the batch, folded from the
log's events: the store's, or the projector's own copies of them from Kafka where those hold, with
no gap, exactly the versions a fold is carried on with (a duplicate or late record is skipped by
its version; a gap drops the session's copies, and the store is read instead). The copies are
kept per session since its last snapshot, at most RECENT_EVENTS of them (least recently appended
sessions go first): they spare reading back the 100 events of each snapshot, a third of its cost.
They are written by a background task of the projector, one session at a time, while the next
batches are applied: a batch never waits for snapshots. (Inline, 200 sessions crossing a multiple
together held the read models back by half a second in bench_system's open loop.) Writing them is
best effort: a failure is logged and the next crossing writes what is missing, while readers fold
from the nearest earlier snapshot meanwhile; it never fails or rolls back a batch of the read
models. Snapshots still queued when the projector stops are left to the next crossing. Rows are
tenant-scoped like the events they come from.

The writer is paced: after a write that took t seconds it waits t * (1/share - 1), so it takes at
most `share` of the projector's time (`snapshot_share`, default 0.25). Sessions that advance in
step cross a multiple together (bench_system's 200 crossed within 0.2 s): unpaced, their 200
snapshots (about 9 ms each) took a core for 1.8 s and the command API's answers waited for it.
The queue holds one entry per session, so a slow writer never makes it grow with the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence

import asyncpg

from eventstore.envelope import RecordedEvent
from eventstore.fold_snapshots import write_due
from eventstore.store import EventStore

log = logging.getLogger(__name__)

# Events kept for snapshots to come (about 1-2 kB each decoded): bench_system's 200 sessions at K = 100.
RECENT_EVENTS = 20_000


def due(records: Sequence[RecordedEvent], every: int) -> dict[tuple[str, str], int]:
    """(tenant, session) -> its newest version in `records`, for sessions that crossed a multiple
    of `every` in them."""
    if every <= 0:
        return {}
    spans: dict[tuple[str, str], tuple[int, int]] = {}
    for r in records:
        key = (r.tenant, r.session_id)
        low, high = spans.get(key, (r.version, r.version))
        spans[key] = (min(low, r.version), max(high, r.version))
    return {key: high for key, (low, high) in spans.items() if high // every > (low - 1) // every}


class SnapshotWriter:
    """Queues the due snapshots of each batch and writes them in the background; counts them for
    status and tests."""

    def __init__(self, pool: asyncpg.Pool, every: int, share: float = 1.0) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self._store = EventStore(pool)
        self.every = every
        self._pause_factor = 1 / share - 1
        self.written = 0
        self._writing: tuple[str, str] | None = None  # the session being written right now
        self._due: dict[tuple[str, str], int] = {}  # (tenant, session) -> newest version due
        self._task: asyncio.Task[None] | None = None
        # (tenant, session) -> its events since its last snapshot, contiguous, least recently appended first
        self._recent: OrderedDict[tuple[str, str], list[RecordedEvent]] = OrderedDict()
        self._recent_count = 0

    @property
    def pending(self) -> int:
        """Sessions whose due snapshots wait for the writer (not the one it is writing)."""
        return len(self._due)

    @property
    def unwritten(self) -> int:
        """Sessions whose due snapshots are not written yet, the one being written included."""
        return len(self._due) + (self._writing is not None and self._writing not in self._due)

    @property
    def recent(self) -> int:
        """Events kept for the snapshots to come."""
        return self._recent_count

    def after_batch(self, records: Sequence[RecordedEvent]) -> None:
        if self.every > 0:
            self._remember(records)
        for key, upto in due(records, self.every).items():
            self._due[key] = max(upto, self._due.get(key, 0))
        if self._due and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._write_queued(), name="fold-snapshots")

    def _remember(self, records: Sequence[RecordedEvent]) -> None:
        for record in records:
            key = (record.tenant, record.session_id)
            kept = self._recent.get(key)
            if kept is None:
                kept = self._recent[key] = []
            else:
                self._recent.move_to_end(key)
            if kept and record.version <= kept[-1].version:
                continue  # a duplicate
            if kept and record.version != kept[-1].version + 1:
                self._recent_count -= len(kept)  # a gap: what came before it is no use
                kept.clear()
            kept.append(record)
            self._recent_count += 1
        while self._recent_count > RECENT_EVENTS and len(self._recent) > 1:
            _, dropped = self._recent.popitem(last=False)
            self._recent_count -= len(dropped)

    def _written_up_to(self, key: tuple[str, str], version: int) -> None:
        """Drop the session's kept events up to `version`: the next snapshot starts after it."""
        kept = self._recent.get(key)
        if not kept:
            return
        drop = 0
        while drop < len(kept) and kept[drop].version <= version:
            drop += 1
        del kept[:drop]
        self._recent_count -= drop
        if not kept:  # a session that ended on a multiple leaves nothing behind
            del self._recent[key]

    async def _write_queued(self) -> None:
        while self._due:
            key = next(iter(self._due))  # the longest waiting first
            upto = self._due.pop(key)
            tenant, session_id = key
            started = time.monotonic()
            self._writing = key
            try:
                recent = tuple(self._recent.get(key, ()))  # a copy: batches append while this writes
                self.written += await write_due(self._store, tenant, session_id, upto, self.every, recent=recent)
                self._written_up_to(key, upto // self.every * self.every)
            except Exception:
                # best effort by design (module docstring): the log is the truth, readers fold on
                log.warning("fold snapshots of %s/%s up to %d not written", tenant, session_id, upto, exc_info=True)
            finally:
                self._writing = None
            if self._pause_factor and self._due:
                await asyncio.sleep((time.monotonic() - started) * self._pause_factor)

    async def aclose(self) -> None:
        """Stop writing; what is still queued is left to the next crossing."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
