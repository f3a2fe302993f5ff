"""Global positions and the safe high-water rule for reading "all events in order".

Invariant: `read_all` only returns rows written by transactions older than the oldest transaction
still open (`transaction_id < pg_snapshot_xmin(pg_current_snapshot())`), so a reader that moves its
cursor to the last position it saw never skips a row that commits late with a lower position.

Why that is enough: positions come from a sequence, drawn when a row is inserted, and a
transaction's rows become visible only at commit. A transaction still open when the reader looks
has an xid >= xmin, so its rows, and every row of any later transaction, are held back until it
ends. The rule needs positions to be drawn in xid order across transactions; `agentlog_append`
(migration 0001) therefore serialises a stream with an advisory lock (which assigns no xid) and
takes its xid immediately before its one INSERT draws the positions, never across a lock wait.
"""

from __future__ import annotations

import enum

READ_ALL_SQL = """
SELECT position, tenant, session_id, version, event_id, type, schema_version, data, metadata,
       recorded_at
  FROM events
 WHERE position > $1
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY position
 LIMIT $2
"""


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
