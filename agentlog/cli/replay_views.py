"""The parts of a replayed session (`agentlog replay [--only PART]`): the decision state and what
the agents knew (eventstore/transcript.py), as one JSON document or as tables for people.

Invariant: `select` without a part is the state snapshot plus every part; with one, only it. The
JSON of a part is the same in the CLI and in the query API's `GET /state?at_version=N`.
"""

from __future__ import annotations

from typing import Any

from agentlog.cli.terminal import Terminal

PART_KEYS = {
    "sections": "sections",
    "conversation": "conversation",
    "tools": "tool_calls",
    "approvals": "approvals",
    "model-calls": "model_calls",
}


def select(state, knowledge, only: str | None) -> dict[str, Any]:
    parts = {"sections": dict(state.sections), **knowledge.to_json()}
    if only is not None:
        key = PART_KEYS[only]
        return {key: parts[key]}
    return {"state": state.to_snapshot(), **{k: v for k, v in parts.items() if k != "sections"}}


def _short(value: Any, limit: int = 60) -> str:
    from eventstore.history import short

    return "-" if value is None else short(value, limit)


def print_part(only: str, state, knowledge) -> None:
    import json

    out = Terminal()
    if only == "sections":
        out.line(json.dumps(dict(state.sections), indent=2, ensure_ascii=False))
        return
    data = knowledge.to_json()[PART_KEYS[only]]
    rows: list[tuple[Any, ...]]
    if only == "conversation":
        rows = [(m["version"], m["role"], m["agent"] or "-", _short(m["content"], 80)) for m in data]
        out.table(("VERSION", "ROLE", "AGENT", "CONTENT"), rows, styles=("dim", "yellow"))
    elif only == "tools":
        rows = [
            (c["call_id"], c.get("tool", "-"), c["status"], _short(c.get("arguments"), 40), _outcome(c)) for c in data
        ]
        out.table(("CALL", "TOOL", "STATUS", "ARGUMENTS", "RESULT"), rows, styles=("cyan", "", "yellow"))
    elif only == "approvals":
        rows = [
            (a["approval_id"], _short(a.get("action"), 40), a.get("risk", "-"), a["status"], a.get("reviewer") or "-")
            for a in data
        ]
        out.table(("APPROVAL", "ACTION", "RISK", "STATUS", "REVIEWER"), rows, styles=("cyan", "", "", "yellow"))
    else:
        rows = [
            (
                m["call_id"],
                m["version"],
                m["agent"] or "-",
                m["model"],
                m["messages"],
                m["tools"],
                (m["error"] and f"error: {m['error']}") or m["finish_reason"] or "-",
            )
            for m in data
        ]
        out.table(("CALL", "VERSION", "AGENT", "MODEL", "MESSAGES", "TOOLS", "OUTCOME"), rows, styles=("cyan",))


def _outcome(call: dict[str, Any]) -> str:
    if call["status"] == "failed":
        return f"error: {_short(call.get('error'), 40)}"
    if call["status"] == "completed":
        took = f" in {call['duration_ms']} ms" if call.get("duration_ms") is not None else ""
        return _short(call.get("result"), 40) + took
    return "-"
