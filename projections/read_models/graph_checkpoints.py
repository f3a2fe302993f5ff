"""LangGraph threads (graph_threads_v1, graph_checkpoints_v1, graph_blobs_v1, graph_writes_v1):
what agentlog.integrations.langgraph's saver reads back: checkpoints with their channel values
and pending writes, by thread, namespace, checkpoint id, metadata and `before`.

Invariants:
- A thread is a session. Its checkpoints are its own rows plus, for a copied thread (a fork), the
  source's rows up to the fork's version, recursively (the lineage); the nearest session's row
  wins where a checkpoint id appears twice.
- Nothing is deleted: GraphThreadDeleted sets `hidden_from` on the rows written before it. A
  row is visible in a read of the thread now when no deletion hid it, and in a read through a
  fork cut at version V when no deletion at or before V hid it; a thread deleted at or before the
  cut inherits nothing.
- Applying is order-tolerant (a parked event retried later gives the same rows): a checkpoint
  put again keeps its latest event; a pending write keeps its first event, except a call of only
  special channels (errors, interrupts: negative `idx`), whose latest event wins, as LangGraph's
  Postgres saver does; a row written after a deletion it precedes in the log is hidden on arrival.
- Channel versions carry a random part (the saver's `get_next_version`), so (channel, version)
  names one value within a lineage and blobs need no cut.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from projections.read_models.projection import Projection, Write

THREADS = "graph_threads_v1"
CHECKPOINTS = "graph_checkpoints_v1"
BLOBS = "graph_blobs_v1"
WRITES = "graph_writes_v1"
MAX_LINEAGE = 64  # forks of forks followed at most this deep

# The first deletion of session ($1, $2) after version $3: the one that hides a row of $3.
_HIDDEN_FROM = f"""(SELECT min(d) FROM {THREADS} t, unnest(t.deleted_versions) d
    WHERE t.tenant = $1 AND t.session_id = $2 AND d > $3)"""

FORKED = f"""
INSERT INTO {THREADS} AS t (tenant, session_id, forked_from, forked_from_version) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant, session_id) DO UPDATE SET forked_from = EXCLUDED.forked_from,
    forked_from_version = EXCLUDED.forked_from_version
"""
DELETED = f"""
INSERT INTO {THREADS} AS t (tenant, session_id, thread_id, deleted_versions) VALUES ($1, $2, $4, ARRAY[$3::bigint])
ON CONFLICT (tenant, session_id) DO UPDATE SET
    thread_id = COALESCE(t.thread_id, EXCLUDED.thread_id),
    deleted_versions = CASE WHEN $3 = ANY(t.deleted_versions) THEN t.deleted_versions
                            ELSE t.deleted_versions || $3::bigint END
"""
HIDE_CHECKPOINTS = f"""
UPDATE {CHECKPOINTS} SET hidden_from = $3
WHERE tenant = $1 AND session_id = $2 AND version < $3 AND (hidden_from IS NULL OR hidden_from > $3)
"""
HIDE_WRITES = f"""
UPDATE {WRITES} SET hidden_from = $3
WHERE tenant = $1 AND session_id = $2 AND version < $3 AND (hidden_from IS NULL OR hidden_from > $3)
"""
# A checkpoint or a task's writes, as one statement of the same text for both events (their parts
# as jsonb arrays), so a batch's graph events run as one executemany, one round trip, instead of
# five statements a step. $1 tenant, $2 session, $3 version, $4 thread id, $5 namespace, $6
# checkpoint id, $7 parent, $8 checkpoint (NULL: a writes event), $9 metadata, $10 recorded_at,
# $11 blobs [{channel, version, value}], $12 task id, $13 task path, $14 writes [{idx, channel,
# value}] (at most one per idx), $15 whether the latest event of a write wins (else the first).
PUT = f"""
WITH thread AS (
    INSERT INTO {THREADS} AS t (tenant, session_id, thread_id) VALUES ($1::text, $2::text, $4::text)
    ON CONFLICT (tenant, session_id) DO UPDATE SET thread_id = EXCLUDED.thread_id WHERE t.thread_id IS NULL
), blobs AS (
    INSERT INTO {BLOBS} (tenant, session_id, checkpoint_ns, channel, channel_version, value, version)
    SELECT $1, $2, $5::text, b.channel, b.version, b.value, $3::bigint
    FROM jsonb_to_recordset($11::jsonb) AS b(channel text, version text, value jsonb)
    ON CONFLICT (tenant, session_id, checkpoint_ns, channel, channel_version) DO NOTHING
), checkpoint AS (
    INSERT INTO {CHECKPOINTS} AS c (tenant, session_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
        checkpoint, metadata, version, hidden_from, recorded_at)
    SELECT $1, $2, $5, $6::text, $7::text, $8::jsonb, $9::jsonb, $3, {_HIDDEN_FROM}, $10::timestamptz
    WHERE $8::jsonb IS NOT NULL
    ON CONFLICT (tenant, session_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
        parent_checkpoint_id = EXCLUDED.parent_checkpoint_id, checkpoint = EXCLUDED.checkpoint,
        metadata = EXCLUDED.metadata, version = EXCLUDED.version, hidden_from = EXCLUDED.hidden_from,
        recorded_at = EXCLUDED.recorded_at
    WHERE c.version < EXCLUDED.version
), pending AS (
    INSERT INTO {WRITES} AS w (tenant, session_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, task_path,
        value, version, hidden_from)
    SELECT $1, $2, $5, $6, $12::text, x.idx, x.channel, $13::text, x.value, $3, {_HIDDEN_FROM}
    FROM jsonb_to_recordset($14::jsonb) AS x(idx integer, channel text, value jsonb)
    ON CONFLICT (tenant, session_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
        channel = EXCLUDED.channel, task_path = EXCLUDED.task_path, value = EXCLUDED.value,
        version = EXCLUDED.version, hidden_from = EXCLUDED.hidden_from
    WHERE CASE WHEN $15::boolean THEN w.version < EXCLUDED.version ELSE w.version > EXCLUDED.version END
)
SELECT 1
"""


def _at(r: RecordedEvent) -> tuple[str, str, int]:
    return r.tenant, r.session_id, r.version


def on_checkpoint(r: RecordedEvent, e: ev.GraphCheckpointPut) -> list[Write]:
    blobs = [{"channel": b.channel, "version": b.version, "value": b.value.model_dump(mode="json")} for b in e.blobs]
    checkpoint = (e.checkpoint_ns, e.checkpoint_id, e.parent_checkpoint_id, e.checkpoint, e.metadata, r.recorded_at)
    return [Write(PUT, (*_at(r), e.thread_id, *checkpoint, blobs, None, None, [], False))]


def on_writes(r: RecordedEvent, e: ev.GraphWritesPut) -> list[Write]:
    # LangGraph's rule: a call of only special channels replaces, any other keeps the first (and
    # within one call, the first write of an idx)
    latest = all(w.idx < 0 for w in e.writes)
    first: dict[int, dict[str, Any]] = {}
    for w in e.writes:
        first.setdefault(w.idx, {"idx": w.idx, "channel": w.channel, "value": w.value.model_dump(mode="json")})
    at: tuple[Any, ...] = (e.checkpoint_ns, e.checkpoint_id, None, None, None, None, [])
    return [Write(PUT, (*_at(r), e.thread_id, *at, e.task_id, e.task_path, list(first.values()), latest))]


def on_deleted(r: RecordedEvent, e: ev.GraphThreadDeleted) -> list[Write]:
    at = _at(r)
    return [Write(DELETED, (*at, e.thread_id)), Write(HIDE_CHECKPOINTS, at), Write(HIDE_WRITES, at)]


def on_forked(r: RecordedEvent, e: ev.SessionForked) -> list[Write]:
    # Every fork is recorded (a row per fork, small): whether the source is a thread is the
    # source's business, and a copied thread must see its source's checkpoints.
    return [Write(FORKED, (r.tenant, r.session_id, e.source_session_id, e.source_version))]


PROJECTION = Projection(
    name="graph_checkpoints",
    tables=(THREADS, CHECKPOINTS, BLOBS, WRITES),
    handlers={
        ev.GraphCheckpointPut: on_checkpoint,
        ev.GraphWritesPut: on_writes,
        ev.GraphThreadDeleted: on_deleted,
        ev.SessionForked: on_forked,
    },
    description="LangGraph threads: checkpoints, channel values and pending writes, with copies and deletions",
)


# Queries of the query API. Every statement filters by the caller's tenant first ($1, from the
# API key). The lineage starts at one session ($2) or, when $2 is NULL, at every thread of the
# tenant; each row carries its `root` (the thread asked about) and `depth` (0 for its own rows).
_LINEAGE = f"""
WITH RECURSIVE lineage(root, session_id, upto, depth) AS (
    SELECT t.session_id, t.session_id, NULL::bigint, 0 FROM {THREADS} t
    WHERE t.tenant = $1 AND ($2::text IS NULL OR t.session_id = $2)
  UNION ALL
    SELECT l.root, t.forked_from, t.forked_from_version, l.depth + 1
    FROM lineage l JOIN {THREADS} t ON t.tenant = $1 AND t.session_id = l.session_id
    WHERE t.forked_from IS NOT NULL AND l.depth < {MAX_LINEAGE}
      AND NOT EXISTS (SELECT 1 FROM unnest(t.deleted_versions) d WHERE l.upto IS NULL OR d <= l.upto)
)"""
_VISIBLE = """(l.upto IS NULL OR {t}.version <= l.upto)
      AND ({t}.hidden_from IS NULL OR (l.upto IS NOT NULL AND {t}.hidden_from > l.upto))"""

# $3 namespace (NULL: all), $4 checkpoint id, $5 before (ids below it), $6 metadata filter
# (containment), $7 limit. Newest first: checkpoint ids are time-ordered (uuid6).
CHECKPOINTS_QUERY = f"""
{_LINEAGE},
visible AS (
    SELECT DISTINCT ON (l.root, c.checkpoint_ns, c.checkpoint_id)
        l.root, c.session_id, c.checkpoint_ns, c.checkpoint_id
    FROM lineage l JOIN {CHECKPOINTS} c ON c.tenant = $1 AND c.session_id = l.session_id
    WHERE {_VISIBLE.format(t="c")}
      AND ($3::text IS NULL OR c.checkpoint_ns = $3) AND ($4::text IS NULL OR c.checkpoint_id = $4)
      AND ($5::text IS NULL OR c.checkpoint_id < $5) AND ($6::jsonb IS NULL OR c.metadata @> $6)
    ORDER BY l.root, c.checkpoint_ns, c.checkpoint_id, l.depth
),
page AS (SELECT * FROM visible ORDER BY checkpoint_id DESC, root LIMIT $7)
SELECT p.root, t.thread_id, p.session_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id,
    c.checkpoint, c.metadata, c.version, c.recorded_at,
    (SELECT jsonb_object_agg(cv.key, blob.value)
     FROM jsonb_each_text(c.checkpoint -> 'channel_versions') cv
     CROSS JOIN LATERAL (
        SELECT b.value FROM lineage l JOIN {BLOBS} b ON b.tenant = $1 AND b.session_id = l.session_id
        WHERE l.root = p.root AND b.checkpoint_ns = c.checkpoint_ns AND b.channel = cv.key
          AND b.channel_version = cv.value
        ORDER BY l.depth LIMIT 1) blob
    ) AS blobs,
    (SELECT jsonb_agg(jsonb_build_object('task_id', w.task_id, 'channel', w.channel, 'idx', w.idx,
                                         'task_path', w.task_path, 'value', w.value)
                      ORDER BY w.task_path, w.task_id, w.idx)
     FROM (SELECT DISTINCT ON (w.task_id, w.idx) w.*
           FROM lineage l JOIN {WRITES} w ON w.tenant = $1 AND w.session_id = l.session_id
           WHERE l.root = p.root AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id
             AND {_VISIBLE.format(t="w")}
           ORDER BY w.task_id, w.idx, l.depth) w
    ) AS pending_writes
FROM page p
JOIN {CHECKPOINTS} c ON c.tenant = $1 AND c.session_id = p.session_id
    AND c.checkpoint_ns = p.checkpoint_ns AND c.checkpoint_id = p.checkpoint_id
LEFT JOIN {THREADS} t ON t.tenant = $1 AND t.session_id = p.root
ORDER BY c.checkpoint_id DESC, p.root
"""

ANCESTORS_QUERY = f"""
{_LINEAGE}
SELECT session_id, upto FROM lineage WHERE depth > 0 ORDER BY depth
"""


async def checkpoints(
    conn,
    tenant: str,
    session_id: str | None,
    *,
    checkpoint_ns: str | None = None,
    checkpoint_id: str | None = None,
    before: str | None = None,
    metadata: dict[str, Any] | None = None,
    limit: int = 100,
) -> list[asyncpg.Record]:
    """Visible checkpoints of one thread (or of every thread of the tenant), newest first."""
    return await conn.fetch(
        CHECKPOINTS_QUERY, tenant, session_id, checkpoint_ns, checkpoint_id, before, metadata, limit
    )


async def ancestors(conn, tenant: str, session_id: str) -> list[asyncpg.Record]:
    """The sessions a thread inherits checkpoints from, with the version each is cut at (for
    read-your-writes: a copy is complete when its sources are projected up to their cuts)."""
    return await conn.fetch(ANCESTORS_QUERY, tenant, session_id)
