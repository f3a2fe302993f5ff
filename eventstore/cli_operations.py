"""Operator subcommands of `agentlog`: status and projection administration.

They read state and print it (JSON with --json); they never change the event log.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys


def _optional(module: str, attribute: str):
    """A component function, or None when this build does not have that component."""
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        return None


async def _status() -> dict:
    from eventstore import db
    from eventstore.settings import Settings

    settings = Settings()
    report: dict = {}
    pool = await db.create_pool(settings.dsn(), min_size=1, max_size=2)
    try:
        outbox_status = _optional("outbox.status", "outbox_status")
        if outbox_status:
            report["outbox"] = await outbox_status(pool)
        projection_status = _optional("projections.admin", "projection_status")
        if projection_status:
            report["projections"] = await projection_status(
                pool, settings.kafka_bootstrap_servers, settings.kafka_topic)
    finally:
        await pool.close()
    return report


def cmd_status(args: argparse.Namespace) -> int:
    report = asyncio.run(_status())
    print(json.dumps(report, indent=2, default=str))
    return 0


async def _projections(action: str, name: str | None) -> object:
    from eventstore import db
    from eventstore.settings import Settings

    settings = Settings()
    if action == "list":
        list_projections = _optional("projections.admin", "list_projections")
        return list_projections() if list_projections else []
    pool = await db.create_pool(settings.dsn(), min_size=1, max_size=2)
    try:
        if action == "status":
            status = _optional("projections.admin", "projection_status")
            return await status(pool, settings.kafka_bootstrap_servers, settings.kafka_topic)
        retry = _optional("projections.admin", "retry_parked")
        retried, still_failing = await retry(pool, name)
        return {"retried": retried, "still_failing": still_failing}
    finally:
        await pool.close()


def cmd_projections(args: argparse.Namespace) -> int:
    if _optional("projections.admin", "list_projections") is None:
        print("agentlog projections: this build has no projections component", file=sys.stderr)
        return 1
    result = asyncio.run(_projections(args.action, args.name))
    print(json.dumps(result, indent=2, default=str))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("status", help="outbox backlog, relay and projector lag").set_defaults(func=cmd_status)
    projections = sub.add_parser("projections", help="read models: list, status, retry parked events")
    projections.add_argument("action", choices=["list", "status", "retry-parked"])
    projections.add_argument("name", nargs="?", help="one projection (default: all)")
    projections.set_defaults(func=cmd_projections)
