"""`agentlog usage`: tokens, cost, latency and errors of a tenant's model calls, from the usage
read model (projections/read_models/usage.py), in total and per agent, model, day or session.

A table for people (colour on a terminal only), the query API's answer with --json. Costs are
what each call was priced at when it was recorded; a fork counts only its own calls. Reads the
read model, so it shows what the projector applied so far (`agentlog status` shows its lag).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from agentlog.cli.terminal import Terminal
from agentlog.cli.timetravel import TENANT_ENV, print_json, tenant_of

_BY = ("agent", "model", "day", "session")


async def _report(args: argparse.Namespace, tenant: str) -> dict[str, Any]:
    from eventstore import db, migrations
    from projections.read_models import usage

    conn = await db.connect(args.settings.dsn())
    try:
        await migrations.ensure_schema_current(conn)
        return await usage.usage(
            conn,
            tenant,
            session_id=args.session,
            agent=args.agent,
            model=args.model,
            since=args.since,
            until=args.until,
            group_by=args.by,
        )
    finally:
        await conn.close()


def _cost(value: float) -> str:
    return f"{value:.6f}"


def _latency(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _row(label: Any, sums: dict[str, Any]) -> list[Any]:
    return [
        "(none)" if label is None else label,
        sums["model_calls"],
        sums["input_tokens"],
        sums["cached_tokens"],
        sums["output_tokens"],
        _cost(sums["cost_usd"]),
        sums["unpriced_calls"],
        sums["errors"],
        _latency(sums["avg_latency_ms"]),
    ]


def render(report: dict[str, Any], tenant: str, session: str | None, out: Terminal) -> None:
    totals = report["totals"]
    scope = f"session {session}" if session else f"tenant {tenant}"
    by = f", by {report['group_by']}" if report["group_by"] else ""
    calls = totals["model_calls"]
    out.line(out.style(f"usage of {scope}: {calls} model call{'' if calls == 1 else 's'}{by}", "bold"))
    headers = [
        (report["group_by"] or "").upper() or "SCOPE",
        "CALLS",
        "INPUT",
        "CACHED",
        "OUTPUT",
        "COST USD",
        "UNPRICED",
        "ERRORS",
        "AVG LATENCY",
    ]
    rows = [_row(group["key"], group) for group in report["groups"]]
    rows.append(_row("total", totals))
    out.table(headers, rows, styles=("cyan", "", "", "", "", "green", "", "red"))
    if report["truncated"]:
        out.line(out.style("(more groups than shown: narrow the filters)", "dim"))


def cmd_usage(args: argparse.Namespace) -> int:
    tenant = tenant_of(args)
    report = asyncio.run(_report(args, tenant))
    if args.json:
        print_json({"tenant": tenant, **report})
    else:
        render(report, tenant, args.session, Terminal())
    return 0


def _instant(text: str) -> datetime:
    """An ISO 8601 instant; without an offset, UTC (as the store records)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (e.g. 2026-03-01T12:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    usage = sub.add_parser("usage", help="tokens, cost, latency and errors of model calls")
    usage.add_argument("--session", help="only this session's own calls")
    usage.add_argument("--by", choices=_BY, help="one line per agent, model, UTC day or session")
    usage.add_argument("--agent", help="only this agent's calls")
    usage.add_argument("--model", help="only this model's calls")
    usage.add_argument("--since", type=_instant, metavar="TIME", help="ISO 8601: calls recorded at or after")
    usage.add_argument("--until", type=_instant, metavar="TIME", help="ISO 8601: calls recorded before")
    usage.add_argument("--tenant", help=f"the tenant (default: ${TENANT_ENV})")
    usage.add_argument("--json", action="store_true", help="machine-readable output")
    usage.set_defaults(func=cmd_usage)
