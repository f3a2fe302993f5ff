"""What the replay, history and fork tests share: a support-case session written through the
store (several appends, like several commands), and `agentlog` run as a separate process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from eventstore import events as ev
from eventstore.envelope import RecordedEvent
from eventstore.registry import to_stored
from eventstore.state import SessionState, fold
from eventstore.store import EventStore
from tests.factories import random_id

ROOT = Path(__file__).resolve().parents[2]
DECIDED_AT = datetime(2025, 3, 1, 12, 5, tzinfo=UTC)

# (actor, events) per command, as the command API would append them.
SUPPORT_CASE: list[tuple[str, list[ev.Event]]] = [
    (
        "key_orchestrator",
        [
            ev.SessionStarted(workflow="support-case", agents=["billing", "account", "policy"]),
            ev.MessageAdded(role="user", content="I was charged twice, and I can't log in"),
        ],
    ),
    ("key_billing", [ev.StateSectionUpdated(agent="billing", section="billing", changes={"duplicate_charge": "ch_2"})]),
    ("key_account", [ev.StateSectionUpdated(agent="account", section="account", changes={"locked": True})]),
    ("key_orchestrator", [ev.CheckpointSaved(name="triaged", step=1)]),
    (
        "key_billing",
        [
            ev.ToolCallRequested(
                call_id="refund-1", tool="payments.refund", arguments={"charge": "ch_2"}, agent="billing"
            ),
            ev.ToolCallCompleted(call_id="refund-1", result={"refund_id": "re_7"}, duration_ms=812),
        ],
    ),
    (
        "key_policy",
        [
            ev.CheckpointSaved(name="refund-requested", step=2),
            ev.ApprovalRequested(
                approval_id="approve-refund", action="refund 42.00 EUR of ch_2", risk="medium", requested_by="policy"
            ),
        ],
    ),
    (
        "key_reviewer",
        [ev.ApprovalDecided(approval_id="approve-refund", decision="approved", reviewer="dana", decided_at=DECIDED_AT)],
    ),
    (
        "key_response",
        [
            ev.MessageAdded(role="assistant", content="Refunded; your login is unlocked.", agent="response"),
            ev.SessionCompleted(outcome="resolved"),
        ],
    ),
]


def new_session_id(prefix: str = "case") -> str:
    return random_id(prefix)


async def write_support_case(store: EventStore, tenant: str, session_id: str) -> list[RecordedEvent]:
    state = SessionState.new(session_id, tenant)
    for actor, events in SUPPORT_CASE:
        after = fold(events, state)
        await store.append(
            tenant,
            session_id,
            [to_stored(e) for e in events],
            expected_version=state.version,
            metadata={"actor": actor, "tenant": tenant},
            new_state=after.to_snapshot(),
            new_status=after.status,
        )
        state = after
    return await store.read_stream(tenant, session_id)


def _run(args: tuple[str, ...], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentlog", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "AGENTLOG_LOG_LEVEL": "WARNING", **env},
    )


async def agentlog(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run `agentlog ARGS` in a child process with extra environment variables (in `cwd`, by
    default the repository)."""
    return await asyncio.to_thread(_run, args, env, cwd)
