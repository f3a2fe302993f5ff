"""Consumer positions of a projector, stored beside its read models (projection_checkpoints).

Invariant: a position is written in the same transaction as the effects of the records before it,
and only if it still holds the offset the writer expected (compare-and-set). The UPDATE takes the
rows' locks first thing in the batch transaction, so two instances that both believe they own a
partition (during a rebalance) serialise on it and the second one's compare fails: it rolls back
its effects and re-seeks instead of applying them twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg

from eventstore.errors import ConcurrencyError

CLAIM = """
INSERT INTO projection_checkpoints (group_id, topic, partition, next_offset, updated_by)
SELECT $1, $2, p, 0, $4 FROM unnest($3::int[]) AS p
ON CONFLICT (group_id, topic, partition) DO NOTHING
"""
READ = """
SELECT partition, next_offset FROM projection_checkpoints
WHERE group_id = $1 AND topic = $2 AND partition = ANY($3::int[])
"""
ADVANCE = """
UPDATE projection_checkpoints c SET next_offset = u.next_offset, high_watermark = u.high,
    updated_by = $3, updated_at = now()
FROM unnest($4::int[], $5::bigint[], $6::bigint[], $7::bigint[]) AS u(partition, expected, next_offset, high)
WHERE c.group_id = $1 AND c.topic = $2 AND c.partition = u.partition AND c.next_offset = u.expected
"""


class CheckpointMovedError(ConcurrencyError):
    """Another process moved a stored position since this one read it."""

    code = "checkpoint_moved"


async def load(
    conn: asyncpg.Connection | asyncpg.Pool, group: str, topic: str, partitions: Iterable[int], owner: str
) -> dict[int, int]:
    """The stored next offset of each partition (0 for one never seen; the row is created)."""
    parts = sorted(set(partitions))
    await conn.execute(CLAIM, group, topic, parts, owner)
    rows = await conn.fetch(READ, group, topic, parts)
    return {row["partition"]: row["next_offset"] for row in rows}


async def advance(
    conn: asyncpg.Connection, group: str, topic: str, owner: str, moves: Mapping[int, tuple[int, int, int | None]]
) -> None:
    """Move each partition from `expected` to `next` ({partition: (expected, next, high)}).

    Raises CheckpointMovedError (the caller rolls its transaction back) unless every row held
    its expected offset.
    """
    parts = sorted(moves)
    status = await conn.execute(
        ADVANCE,
        group,
        topic,
        owner,
        parts,
        [moves[p][0] for p in parts],
        [moves[p][1] for p in parts],
        [moves[p][2] for p in parts],
    )
    if int(status.split()[-1]) != len(parts):
        raise CheckpointMovedError(f"positions of {group} on {topic} moved by another process", partitions=parts)
