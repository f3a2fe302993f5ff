"""Global positions, the read-all cursor and the safe high-water rule for reading "all events".

Invariant: `read_all` returns rows in (transaction_id, position) order, after a LogCursor of both,
and only rows written by transactions older than the oldest transaction still open
(`transaction_id < pg_snapshot_xmin(pg_current_snapshot())`). A reader that moves its cursor to
the last row it saw therefore never skips a row that commits late, whatever positions it drew.

Why that is enough: a transaction's rows become visible only at commit, and a transaction still
open when the reader looks has an xid >= xmin, so its rows, and the rows of every transaction with
a higher xid, are held back until it ends. Every transaction below xmin has ended: the set of rows
below xmin never grows again, and ordering by xid first means a cursor only ever moves past rows
of ended transactions. Positions alone would not do: a transaction may take its xid before another
one but draw its positions after it (xid a < b, position p_a > p_b); with a position cursor, a
reader that saw a's row at p_a while b was open would skip b's row at p_b once b commits.

Per-session order is still version order: `agentlog_append` (migration 0001) serialises a
session's appends with an advisory lock (which assigns no xid) and takes its xid after the lock,
so a later version of a session always has a higher xid. The one-statement append
(eventstore/store.py) takes no lock: it writes version v+1 only if its snapshot shows the stream at
v, and takes its xid after that snapshot, so the writer of v (committed before the snapshot) had
its xid before; two writers of the same version are kept apart by the unique (tenant, session_id,
version) of events. Rows of one transaction share the xid
and come in position order, which is version order within an append.

Group commit (eventstore/group_commit.py) puts several one-statement appends in one transaction,
whose xid the first statement takes: a later statement of the batch writes only when the
session's last event has a lower xid than the batch's, and is otherwise written alone afterwards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

READ_ALL_SQL = """
SELECT transaction_id::text::bigint AS transaction_id, position, tenant, session_id, version,
       event_id, type, schema_version, data, metadata, recorded_at
  FROM events
 WHERE (transaction_id, position) > ($1::bigint::text::xid8, $2::bigint)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY events.transaction_id, events.position
 LIMIT $3
"""
# The ORDER BY names the table's columns: a bare `transaction_id` would be the bigint output column
# of the same name, which no index has, so every page sorted the rest of the log (quadratic; found
# by bench/bench_rebuild.py at a million events).


@dataclass(frozen=True, order=True, slots=True)
class LogCursor:
    """Where a reader of the whole log stands: the last (transaction id, position) it saw.

    Ordered like the log. START is before every row; a cursor is stored as its two numbers.
    """

    transaction_id: int
    position: int


START = LogCursor(0, 0)


class ExpectedState(enum.Enum):
    """Expected versions that are not a number (`append(expected_version=...)`)."""

    NO_STREAM = -1  # the session must not exist yet
    ANY = -2  # append at the end, whatever the version, under the stream's lock


NO_STREAM = ExpectedState.NO_STREAM
ANY = ExpectedState.ANY


def expected_code(expected: int | ExpectedState) -> int:
    """The number `agentlog_append` takes: >= 0 exact, -1 no stream, -2 any."""
    if isinstance(expected, ExpectedState):
        return expected.value
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise ValueError(f"expected_version must be an int >= 0, NO_STREAM or ANY, not {expected!r}")
    return expected
