"""The projections a projector runs, in the order it applies them within a batch.

Invariant: tool_calls comes before tool_stats (statistics read a finished call's tool name and
duration from tool_calls_v1); no other projection reads another's tables. READS names, per
projection, the projections whose tables its handlers read (a rebuild builds them beside it).
"""

from __future__ import annotations

from projections.read_models import approvals

from projections.read_models import session_state

from projections.read_models import summaries

from projections.read_models import timeline

from projections.read_models import tool_calls
from projections.read_models.projection import Projection

PROJECTIONS: tuple[Projection, ...] = (
    summaries.PROJECTION,
    timeline.PROJECTION,
    session_state.STATE_PROJECTION,
    session_state.AUDIT_PROJECTION,
    tool_calls.CALLS_PROJECTION,
    tool_calls.STATS_PROJECTION,
    approvals.PROJECTION,
)

BY_NAME: dict[str, Projection] = {p.name: p for p in PROJECTIONS}

READS: dict[str, tuple[str, ...]] = {"tool_stats": ("tool_calls",)}
