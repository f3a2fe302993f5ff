"""Operator subcommands of `agentlog`: status and projection administration.

They print state (JSON with --json) or act on read models (agentlog/cli/rebuild.py); they never
change the event log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from agentlog.cli.latency import render as render_latency
from agentlog.cli.latency import stage_latency
from agentlog.cli.rebuild import add_arguments as rebuild_arguments
from outbox.status import outbox_status
from projections import admin


async def _status(settings) -> dict:
    from eventstore import db, migrations

    report: dict = {}
    pool = await db.create_pool(settings.dsn(), min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrations.ensure_schema_current(conn)
        report["outbox"] = await outbox_status(pool)
        report["projections"] = await admin.projection_status(
            pool, settings.kafka_bootstrap_servers, settings.kafka_topic
        )
    finally:
        await pool.close()
    report["latency"] = await asyncio.to_thread(stage_latency)
    return report


def cmd_status(args: argparse.Namespace) -> int:
    report = asyncio.run(_status(args.settings))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_status(report))
    return 0


def render_status(report: dict) -> str:
    """The few lines an operator reads first: backlog, who relays, how far each projection lags."""
    lines = []
    outbox = report.get("outbox")
    if outbox is not None:
        leader = outbox.get("leader")
        who = f"{leader['hostname']} pid {leader['pid']}" if leader else "NO RELAY RUNNING"
        lines.append(
            f"outbox   backlog {outbox['backlog']} events, oldest {outbox['oldest_age_seconds']:.1f}s, "
            f"parked {outbox.get('parked', 0)}; relay leader: {who}, standbys {len(outbox.get('standbys', []))}"
        )
    for projection in report.get("projections", []):
        lag = projection["lag_events"]
        lag_text = f"lag {lag} events" if lag is not None else f"lag unknown ({projection['kafka_error']})"
        lines.append(
            f"{projection['projection']:<18} {lag_text}, last position {projection['last_applied_position']}, "
            f"parked {projection['parked']}"
        )
    lines.extend(render_latency(report.get("latency") or {}))
    return "\n".join(lines) or "no components in this build"


async def _projections(settings, action: str, name: str | None) -> Any:
    from eventstore import db
    from projections.rebuild import status as rebuild_status

    if action == "list":
        return admin.list_projections()
    pool = await db.create_pool(settings.dsn(), min_size=1, max_size=2)
    try:
        if action == "status":
            report = await admin.projection_status(pool, settings.kafka_bootstrap_servers, settings.kafka_topic)
            return await rebuild_status.add_to(pool, report)
        retried, still_failing = await admin.retry_parked(pool, name)
        return {"retried": retried, "still_failing": still_failing}
    finally:
        await pool.close()


def cmd_projections(args: argparse.Namespace) -> int:
    from agentlog.cli import rebuild

    known = [p["name"] for p in admin.list_projections()]
    if args.action == "rebuild":
        known.append("all")  # every projection in one rebuild (one read of the log)
    needs_name = args.action in ("rebuild", "rollback", "drop-old")
    if (needs_name or args.name) and args.name not in known:
        print(
            f"agentlog projections {args.action}: unknown projection {args.name!r}; known: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    why = rebuild.refused(args)
    if why is not None:
        print(f"agentlog projections {args.action}: {why}", file=sys.stderr)
        return 2
    if args.action == "rebuild":
        return rebuild.cmd_rebuild(args)
    if args.action in ("rollback", "drop-old"):
        return rebuild.cmd_retired(args)
    print(json.dumps(asyncio.run(_projections(args.settings, args.action, args.name)), indent=2, default=str))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser("status", help="outbox backlog, relay and projector lag, per-stage latency")
    status.add_argument("--json", action="store_true", help="the full report as JSON")
    status.set_defaults(func=cmd_status)
    projections = sub.add_parser(
        "projections", help="read models: list, status, rebuild, rollback, drop-old, retry parked events"
    )
    projections.add_argument("action", choices=["list", "status", "rebuild", "rollback", "drop-old", "retry-parked"])
    projections.add_argument(
        "name", nargs="?", help="one projection (default: all; rebuild, rollback, drop-old: required)"
    )
    projections.add_argument("--batch-size", type=int, default=500, help="rebuild: events per transaction")
    projections.add_argument("--json", action="store_true", help="rebuild, rollback, drop-old: the result as JSON")
    rebuild_arguments(projections)
    projections.set_defaults(func=cmd_projections)
