"""The read models: each is one module holding its tables' names, its handlers (the projections a
projector runs, PROJECTIONS below, in the order it applies them within a batch) and the queries the
query API asks of its tables. A new read model is one module registered here plus a migration.

Invariant: tool_calls comes before tool_stats (statistics read a finished call's tool name and
duration from tool_calls_v1); no other projection reads another's tables. READS names, per
projection, the projections whose tables its handlers read (a rebuild builds them beside it).
"""

from __future__ import annotations

from types import ModuleType

from projections.read_models import (
    approvals,
    conversation_items,
    graph_checkpoints,
    session_state,
    summaries,
    timeline,
    tool_calls,
    usage,
)
from projections.read_models.projection import Projection

READ_MODELS: tuple[ModuleType, ...] = (
    summaries,
    timeline,
    session_state,
    tool_calls,
    approvals,
    graph_checkpoints,
    conversation_items,
    usage,
)

PROJECTIONS: tuple[Projection, ...] = (
    summaries.PROJECTION,
    timeline.PROJECTION,
    session_state.STATE_PROJECTION,
    session_state.AUDIT_PROJECTION,
    tool_calls.CALLS_PROJECTION,
    tool_calls.STATS_PROJECTION,
    approvals.PROJECTION,
    graph_checkpoints.PROJECTION,
    conversation_items.PROJECTION,
    usage.PROJECTION,
)

BY_NAME: dict[str, Projection] = {p.name: p for p in PROJECTIONS}

READS: dict[str, tuple[str, ...]] = {"tool_stats": ("tool_calls",)}
