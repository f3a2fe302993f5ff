"""Fold snapshots written by the projector, off the command path (eventstore/fold_snapshots.py).

Invariant: after each committed batch, every session whose events in it reached a multiple of
`snapshot_every` gets the snapshots it lacks up to its newest version in the batch, folded from the
event store (the truth), not from the records, so a duplicate or late record changes nothing.
Writing them is best effort: a failure is logged and the next crossing writes what is missing,
while readers fold from the nearest earlier snapshot meanwhile; it never fails or rolls back a
batch of the read models. Rows are tenant-scoped like the events they come from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from eventstore.envelope import RecordedEvent
from eventstore.fold_snapshots import write_due
from eventstore.store import EventStore

log = logging.getLogger(__name__)


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
    """Writes the due snapshots of a batch; counts them for status and tests."""

    def __init__(self, pool: asyncpg.Pool, every: int) -> None:
        self._store = EventStore(pool)
        self.every = every
        self.written = 0

    async def after_batch(self, records: Sequence[RecordedEvent]) -> None:
        for (tenant, session_id), upto in due(records, self.every).items():
            try:
                self.written += await write_due(self._store, tenant, session_id, upto, self.every)
            except Exception:
                # best effort by design (module docstring): the log is the truth, readers fold on
                log.warning("fold snapshots of %s/%s up to %d not written", tenant, session_id, upto, exc_info=True)
