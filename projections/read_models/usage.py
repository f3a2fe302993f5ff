"""Model usage (model_usage_v1) and session budgets (session_budgets_v1).

Invariants:
- One row per model call, keyed by (tenant, session, call id) and written once (a redelivered
  event changes nothing). Its cost is the one in the event, priced when the call was decided with
  the price version then in effect (eventstore/pricing.py): this projection never prices, so a
  rebuild gives the same past costs whatever the price table says by then. A call without a
  cost (unpriced model, or recorded before calls were priced) has cost NULL, counted apart.
- A fork's rows are its own calls only: SessionForked copies the source's state, not its calls,
  so the source's calls before the fork point are counted once, in the source.
- A budget row takes its limits from the start (or, for a fork, the source's limits) and its
  `exceeded` flag from BudgetExceeded; both only ever get set, so a late retried event never
  clears what a later one set.
- Reading: sums over the rows of the caller's tenant (a bound parameter from the API key), with
  the optional filters, in total and per group (agent, model, day in UTC, or session).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import asyncpg

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from projections.read_models.projection import Projection, Write

USAGE = "model_usage_v1"
BUDGETS = "session_budgets_v1"

INSERT_CALL = f"""
INSERT INTO {USAGE} (tenant, session_id, call_id, version, agent, provider, model, recorded_at, input_tokens,
    output_tokens, cached_tokens, cost_usd, price_version, latency_ms, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (tenant, session_id, call_id) DO NOTHING
"""

SET_BUDGET = f"""
INSERT INTO {BUDGETS} AS b (tenant, session_id, max_tokens, max_cost_usd) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant, session_id) DO UPDATE SET
    max_tokens = COALESCE(b.max_tokens, $3), max_cost_usd = COALESCE(b.max_cost_usd, $4)
"""

EXCEEDED = f"""
INSERT INTO {BUDGETS} AS b (tenant, session_id, max_tokens, max_cost_usd, exceeded, exceeded_by, exceeded_kind,
    exceeded_version, exceeded_at)
VALUES ($1, $2, $3, $4, true, $5, $6, $7, $8)
ON CONFLICT (tenant, session_id) DO UPDATE SET
    max_tokens = COALESCE(b.max_tokens, $3), max_cost_usd = COALESCE(b.max_cost_usd, $4), exceeded = true,
    exceeded_by = $5, exceeded_kind = $6, exceeded_version = $7, exceeded_at = $8
"""


def _usd(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(repr(value))


def on_model_call(r: RecordedEvent, e: ev.ModelCallRecorded) -> list[Write]:
    u = e.usage
    args = (
        r.tenant,
        r.session_id,
        e.call_id,
        r.version,
        e.agent,
        e.provider,
        e.model,
        r.recorded_at,
        u.input_tokens or 0,
        u.output_tokens or 0,
        u.cached_tokens or 0,
        _usd(e.cost.usd) if e.cost is not None else None,
        e.cost.price_version if e.cost is not None else None,
        e.latency_ms,
        e.response.error is not None,
    )
    return [Write(INSERT_CALL, args)]


def on_started(r: RecordedEvent, e: ev.SessionStarted) -> list[Write]:
    if e.budget is None:
        return []
    return [Write(SET_BUDGET, (r.tenant, r.session_id, e.budget.max_tokens, _usd(e.budget.max_cost_usd)))]


def on_forked(r: RecordedEvent, e: ev.SessionForked) -> list[Write]:
    # The fork keeps the source's limits (its state says so) and spends from zero.
    budget = e.state.get("budget")
    if not budget:
        return []
    return [Write(SET_BUDGET, (r.tenant, r.session_id, budget.get("max_tokens"), _usd(budget.get("max_cost_usd"))))]


def on_exceeded(r: RecordedEvent, e: ev.BudgetExceeded) -> list[Write]:
    args = (
        r.tenant,
        r.session_id,
        e.max_tokens,
        _usd(e.max_cost_usd),
        e.call_id,
        e.exceeded,
        r.version,
        r.recorded_at,
    )
    return [Write(EXCEEDED, args)]


PROJECTION = Projection(
    name="model_usage",
    tables=(USAGE, BUDGETS),
    handlers={
        ev.ModelCallRecorded: on_model_call,
        ev.SessionStarted: on_started,
        ev.SessionForked: on_forked,
        ev.BudgetExceeded: on_exceeded,
    },
    description="each model call's tokens, cost (as priced when called), latency, error; session budgets",
)


# Queries of the query API. Every statement filters by the caller's tenant first: the tenant is a
# bound parameter taken from the API key, never from the request.
GroupBy = Literal["agent", "model", "day", "session"]
GROUP_KEYS: dict[str, str] = {
    "agent": "agent",
    "model": "model",
    "day": "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "session": "session_id",
}
SUMS = """
count(*) AS model_calls, COALESCE(sum(input_tokens), 0)::bigint AS input_tokens,
COALESCE(sum(output_tokens), 0)::bigint AS output_tokens, COALESCE(sum(cached_tokens), 0)::bigint AS cached_tokens,
COALESCE(sum(cost_usd), 0) AS cost_usd, count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_calls,
count(*) FILTER (WHERE error) AS errors, COALESCE(sum(latency_ms), 0)::bigint AS total_latency_ms,
avg(latency_ms)::float8 AS avg_latency_ms, max(latency_ms) AS max_latency_ms
"""
FILTERS = f"""
FROM {USAGE} WHERE tenant = $1 AND ($2::text IS NULL OR session_id = $2) AND ($3::text IS NULL OR agent = $3)
  AND ($4::text IS NULL OR model = $4) AND ($5::timestamptz IS NULL OR recorded_at >= $5)
  AND ($6::timestamptz IS NULL OR recorded_at < $6)
"""


def _sums(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    item["cost_usd"] = float(item["cost_usd"])
    return item


async def usage(
    conn,
    tenant: str,
    *,
    session_id: str | None = None,
    agent: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    group_by: GroupBy | None = None,
    limit: int = 1000,
) -> dict[str, Any]:
    """Totals over the matching calls and, with `group_by`, per group (ordered by key; at most
    `limit` groups, `truncated` says whether there were more)."""
    args = (tenant, session_id, agent, model, since, until)
    totals = _sums(await conn.fetchrow(f"SELECT {SUMS} {FILTERS}", *args))
    answer: dict[str, Any] = {"group_by": group_by, "totals": totals, "groups": [], "truncated": False}
    if group_by is not None:
        key = GROUP_KEYS[group_by]
        rows = await conn.fetch(
            f"SELECT {key} AS key, {SUMS} {FILTERS} GROUP BY 1 ORDER BY 1 NULLS FIRST LIMIT $7", *args, limit + 1
        )
        answer["groups"] = [_sums(row) for row in rows[:limit]]
        answer["truncated"] = len(rows) > limit
    return answer


SESSION_USAGE = f"""
SELECT session_id, {SUMS} FROM {USAGE} WHERE tenant = $1 AND session_id = ANY($2::text[]) GROUP BY session_id
"""
SESSION_BUDGETS = f"""
SELECT session_id, max_tokens, max_cost_usd::float8 AS max_cost_usd, exceeded, exceeded_by, exceeded_kind,
    exceeded_version, exceeded_at
FROM {BUDGETS} WHERE tenant = $1 AND session_id = ANY($2::text[])
"""
NO_USAGE = {
    "model_calls": 0,
    "input_tokens": 0,
    "output_tokens": 0,
    "cached_tokens": 0,
    "cost_usd": 0.0,
    "unpriced_calls": 0,
    "errors": 0,
    "total_latency_ms": 0,
    "avg_latency_ms": None,
    "max_latency_ms": None,
}


async def of_sessions(conn, tenant: str, session_ids: list[str]) -> dict[str, tuple[dict[str, Any], Any]]:
    """(usage, budget or None) of each of `session_ids` (the caller's tenant's), for summaries."""
    used = {row["session_id"]: row for row in await conn.fetch(SESSION_USAGE, tenant, session_ids)}
    budgets = {row["session_id"]: dict(row) for row in await conn.fetch(SESSION_BUDGETS, tenant, session_ids)}
    answer = {}
    for session_id in session_ids:
        row = used.get(session_id)
        sums = dict(NO_USAGE) if row is None else _sums(row)
        sums.pop("session_id", None)
        budget = budgets.get(session_id)
        if budget is not None:
            budget.pop("session_id")
        answer[session_id] = (sums, budget)
    return answer
