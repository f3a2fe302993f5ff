"""Approvals queue (approvals_v1): one row per approval request with its action, risk, expiry,
and the decision once a reviewer made it.

Invariant: a decision is final: a late-applied request never turns a decided approval back to
pending. 'expired' is not stored: it is a pending approval whose expires_at has passed, judged at
read time, so the queue is right without a timer writing rows. A fork's pending approvals (the
source's, at the version forked) are pending rows of the fork from its first event, with only
their expiry known.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from projections.read_models.projection import Projection, Write

TABLE = "approvals_v1"

UPSERT = f"""
INSERT INTO {TABLE} AS a (tenant, session_id, approval_id, action, risk, requested_by, details,
    expires_at, status, reviewer, comment, decided_at, requested_at, requested_position)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (tenant, session_id, approval_id) DO UPDATE SET
    action = COALESCE(a.action, $4),
    risk = COALESCE(a.risk, $5),
    requested_by = COALESCE(a.requested_by, $6),
    details = COALESCE(a.details, $7),
    expires_at = COALESCE(a.expires_at, $8),
    status = CASE WHEN $9 = 'pending' THEN a.status ELSE $9 END,
    reviewer = COALESCE($10, a.reviewer),
    comment = COALESCE($11, a.comment),
    decided_at = COALESCE($12, a.decided_at),
    requested_at = COALESCE(a.requested_at, $13),
    requested_position = LEAST(a.requested_position, $14)
"""

# Status as the API shows it: a pending approval past its expiry is 'expired'.
SHOWN_STATUS = "CASE WHEN status = 'pending' AND expires_at <= now() THEN 'expired' ELSE status END"


def on_requested(r: RecordedEvent, e: ev.ApprovalRequested) -> list[Write]:
    return [
        Write(
            UPSERT,
            (
                r.tenant,
                r.session_id,
                e.approval_id,
                e.action,
                e.risk,
                e.requested_by,
                e.details,
                e.expires_at,
                "pending",
                None,
                None,
                None,
                r.recorded_at,
                r.position,
            ),
        )
    ]


def on_decided(r: RecordedEvent, e: ev.ApprovalDecided) -> list[Write]:
    return [
        Write(
            UPSERT,
            (
                r.tenant,
                r.session_id,
                e.approval_id,
                None,
                None,
                None,
                None,
                None,
                e.decision,
                e.reviewer,
                e.comment,
                e.decided_at,
                None,
                r.position,
            ),
        )
    ]


def on_forked(r: RecordedEvent, e: ev.SessionForked) -> list[Write]:
    # The source's pending approvals are pending in the fork too (its fold says so, and a decision
    # on them is accepted there), so reviewers must see them; the snapshot keeps only their expiry.
    pending = e.state.get("pending_approvals") or {}
    return [
        Write(
            UPSERT,
            (
                r.tenant,
                r.session_id,
                approval_id,
                None,
                None,
                None,
                None,
                datetime.fromisoformat(expires) if expires else None,
                "pending",
                None,
                None,
                None,
                r.recorded_at,
                r.position,
            ),
        )
        for approval_id, expires in sorted(pending.items())
    ]


PROJECTION = Projection(
    name="approvals",
    tables=(TABLE,),
    handlers={ev.ApprovalRequested: on_requested, ev.ApprovalDecided: on_decided, ev.SessionForked: on_forked},
    description="approval queue: pending, approved, rejected, expired; risk, action, reviewer",
)


# Queries of the query API. Every statement filters by the caller's tenant first: the tenant is a
# bound parameter taken from the API key, never from the request, so no filter, cursor or path can
# reach another tenant's rows.
async def queue(conn, tenant: str, status: str | None, after: int, limit: int) -> list[asyncpg.Record]:
    shown = SHOWN_STATUS
    return await conn.fetch(
        f"SELECT session_id, approval_id, action, risk, requested_by, details, expires_at, {shown} AS status, "
        f"reviewer, comment, decided_at, requested_at, requested_position FROM {TABLE} "
        f"WHERE tenant = $1 AND ($2::text IS NULL OR {shown} = $2) AND requested_position > $3 "
        "ORDER BY requested_position LIMIT $4",
        tenant,
        status,
        after,
        limit,
    )
