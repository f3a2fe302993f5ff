"""An agent SDK's conversation memory (conversation_items_v1, conversation_removals_v1): the items
agentlog.integrations.openai_agents's Session reads back, in order.

Invariants: one row per item ever added, numbered per session by the event (`first_index` + its
place), never deleted: a pop sets the item's `removed_version`, a clear sets it on every item
added before it. Removals are also kept as rows, so applying is order-tolerant: an item applied
after a pop or clear that follows it in the log (a parked event retried) is removed on arrival,
and the rows equal those of in-order application.
"""

from __future__ import annotations

import asyncpg

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from projections.read_models.projection import Projection, Write

ITEMS = "conversation_items_v1"
REMOVALS = "conversation_removals_v1"

INSERT_ITEM = f"""
INSERT INTO {ITEMS} (tenant, session_id, idx, item, agent, added_version, removed_version, recorded_at)
VALUES ($1, $2, $4, $5, $6, $3,
    (SELECT min(r.version) FROM {REMOVALS} r WHERE r.tenant = $1 AND r.session_id = $2 AND r.version > $3
        AND (r.idx IS NULL OR r.idx = $4)),
    $7)
ON CONFLICT (tenant, session_id, idx) DO NOTHING
"""
RECORD_REMOVAL = f"""
INSERT INTO {REMOVALS} (tenant, session_id, version, idx) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant, session_id, version) DO NOTHING
"""
POP = f"""
UPDATE {ITEMS} SET removed_version = $3
WHERE tenant = $1 AND session_id = $2 AND idx = $4 AND added_version < $3
  AND (removed_version IS NULL OR removed_version > $3)
"""
CLEAR = f"""
UPDATE {ITEMS} SET removed_version = $3
WHERE tenant = $1 AND session_id = $2 AND added_version < $3 AND (removed_version IS NULL OR removed_version > $3)
"""


def on_added(r: RecordedEvent, e: ev.ConversationItemsAdded) -> list[Write]:
    return [
        Write(INSERT_ITEM, (r.tenant, r.session_id, r.version, e.first_index + i, item, e.agent, r.recorded_at))
        for i, item in enumerate(e.items)
    ]


def on_popped(r: RecordedEvent, e: ev.ConversationItemPopped) -> list[Write]:
    at = (r.tenant, r.session_id, r.version, e.index)
    return [Write(RECORD_REMOVAL, at), Write(POP, at)]


def on_cleared(r: RecordedEvent, e: ev.ConversationCleared) -> list[Write]:
    at = (r.tenant, r.session_id, r.version)
    return [Write(RECORD_REMOVAL, (*at, None)), Write(CLEAR, at)]


PROJECTION = Projection(
    name="conversation_items",
    tables=(ITEMS, REMOVALS),
    handlers={
        ev.ConversationItemsAdded: on_added,
        ev.ConversationItemPopped: on_popped,
        ev.ConversationCleared: on_cleared,
    },
    description="agent SDK conversation memory: items in order, with pops and clears",
)


# Queries of the query API: the tenant ($1) comes from the API key.
LIVE_ITEMS = f"""
SELECT idx, item, agent, added_version, recorded_at FROM (
    SELECT idx, item, agent, added_version, recorded_at FROM {ITEMS}
    WHERE tenant = $1 AND session_id = $2 AND removed_version IS NULL
    ORDER BY idx DESC LIMIT $3
) latest ORDER BY idx
"""
LIVE_COUNT = f"SELECT count(*) FROM {ITEMS} WHERE tenant = $1 AND session_id = $2 AND removed_version IS NULL"


async def live_items(conn, tenant: str, session_id: str, limit: int | None) -> list[asyncpg.Record]:
    """The latest `limit` items not removed (all when None), oldest first."""
    return await conn.fetch(LIVE_ITEMS, tenant, session_id, limit)


async def live_count(conn, tenant: str, session_id: str) -> int:
    count: int = await conn.fetchval(LIVE_COUNT, tenant, session_id)
    return count
