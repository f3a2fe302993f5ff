"""`agentlog blame` (which event set each value of the state) and `agentlog diff` (two points of
history: two versions, or a fork against its source), over a session's lineage.

Both read like replay (Postgres or the Kafka topic) and fold with the pure eventstore/blame.py and
eventstore/diff.py. Tables for people (colour on a terminal), one JSON document with --json.
Exit codes as for replay: 1 for an unknown session, section or version, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from agentlog.cli.terminal import Terminal
from agentlog.cli.timetravel import (
    event_store,
    print_json,
    read_lineage,
    resolve_on_store,
    session_arguments,
    tenant_of,
    version_arg,
    version_for_time,
)

# --- blame -----------------------------------------------------------------------------------------


async def _blame(args: argparse.Namespace, tenant: str):
    """(blame, version, last version): from the store, starting at the nearest fold snapshot;
    from the Kafka topic, folding the lineage read there."""
    from eventstore.blame import BlameFold
    from eventstore.fold_snapshots import fold_to
    from eventstore.replay import Target, parse_time

    at_version = args.at_version
    if args.at is not None:
        at_version = await version_for_time(args, tenant, args.session, parse_time(args.at))
    if args.source == "kafka":
        events, last = await read_lineage(args, tenant, args.session, at_version, field="at_version")
        return BlameFold().apply_all(events), at_version or last, last
    target = Target("version", at_version) if at_version is not None else Target()
    async with event_store(args.settings) as store:
        version, last = await resolve_on_store(store, tenant, args.session, target, field="at_version")
        point = await fold_to(store, tenant, args.session, version)
    return point.blame, version, last


def cmd_blame(args: argparse.Namespace) -> int:
    tenant = tenant_of(args)
    fold, version, last = asyncio.run(_blame(args, tenant))
    entries = fold.result(args.section).entries
    if args.json:
        print_json(
            {
                "session_id": args.session,
                "tenant": tenant,
                "version": version,
                "last_version": last,
                "section": args.section,
                "entries": [entry.to_json() for entry in entries],
            }
        )
        return 0
    out = Terminal()
    out.line(
        f"blame of {args.session} at version {version} of {last}"
        + (f", section {args.section}" if args.section else "")
    )
    rows = [
        (
            entry.path,
            _value(entry.value),
            entry.origin.version
            if entry.origin.session_id == args.session
            else f"{entry.origin.session_id}@{entry.origin.version}",
            entry.origin.type,
            entry.origin.agent or "-",
            entry.origin.actor or "-",
            entry.origin.recorded_at,
        )
        for entry in entries
    ]
    out.table(
        ("PATH", "VALUE", "VERSION", "TYPE", "AGENT", "ACTOR", "RECORDED_AT"), rows, styles=("cyan", "", "yellow")
    )
    return 0


def _value(value: Any) -> str:
    from eventstore.history import short

    return short(value, 40)


# --- diff ------------------------------------------------------------------------------------------


def parse_points(points: list[str]) -> list[tuple[str, int | None]]:
    """`SESSION A B` or `SESSION@A OTHER@B` (a missing @N: the session's last version)."""
    if len(points) == 3:
        session = points[0]
        return [(session, _number(points[1])), (session, _number(points[2]))]
    if len(points) != 2:
        raise argparse.ArgumentTypeError("give SESSION A B, or SESSION@A OTHER@B")
    parsed = []
    for point in points:
        session, at, version = point.rpartition("@") if "@" in point else (point, "", "")
        parsed.append((session, _number(version) if at else None))
    return parsed


def _number(text: str) -> int:
    try:
        return version_arg(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"a version {exc}") from None


async def _diff_on_store(args: argparse.Namespace, tenant: str, points: list[tuple[str, int | None]]):
    """The diff from the store: each side from its nearest fold snapshot (eventstore/diff_store.py)."""
    from eventstore.diff_store import diff_on_store
    from eventstore.errors import ReplayTargetError, SessionNotFoundError

    async with event_store(args.settings) as store:
        resolved = []
        for session, version in points:
            stream = await store.load(tenant, session)
            if stream is None or stream.version == 0:
                raise SessionNotFoundError(f"session {session!r} not found", session_id=session)
            if version is not None and version > stream.version:
                raise ReplayTargetError(
                    f"version {version} is outside the session {session}, which has versions 1 to {stream.version}",
                    field="version",
                    last_version=stream.version,
                )
            resolved.append((session, version or stream.version))
        return await diff_on_store(store, tenant, resolved[0], resolved[1])


async def _sides(args: argparse.Namespace, tenant: str, points: list[tuple[str, int | None]]):
    from eventstore.diff import Side

    sides = []
    for session, version in points:
        events, last = await read_lineage(args, tenant, session, version, field="version", label="version")
        sides.append(Side(session, version or last, events))
    return sides


def cmd_diff(args: argparse.Namespace) -> int:
    from eventstore.diff import diff
    from eventstore.large_reads import gc_paused

    tenant = tenant_of(args)
    try:
        points = parse_points(args.points)
    except argparse.ArgumentTypeError as exc:
        args.parser.error(str(exc))
    with gc_paused():  # answers as large as the session (eventstore/large_reads.py)
        if args.source == "postgres":
            result = asyncio.run(_diff_on_store(args, tenant, points))
        else:
            left, right = asyncio.run(_sides(args, tenant, points))
            result = diff(left, right)
    if args.json:
        print_json({"tenant": tenant, **result.to_json()})
        return 0
    _print_diff(Terminal(), result)
    return 0


def _print_diff(out: Terminal, result) -> None:
    from eventstore.history import short

    left, right = result.left, result.right
    out.line(
        out.style(f"{left.session_id}@{left.version} -> {right.session_id}@{right.version}", "bold")
        + f": {result.common_steps} steps in common"
    )
    state = result.state
    out.line("state:" if state else "state: the same")
    for path, value in state.added.items():
        out.line(out.style(f"  + {path} = {short(value, 72)}", "green"))
    for path, value in state.removed.items():
        out.line(out.style(f"  - {path} (was {short(value, 72)})", "red"))
    for path, (old, new) in state.changed.items():
        out.line(out.style(f"  ~ {path}: {short(old, 32)} -> {short(new, 72)}", "yellow"))
    if not result.steps:
        out.line("events: the same")
        return
    out.line(f"events after step {result.common_steps} (= the same on both sides):")
    rows = [
        (pair.step, _event(pair.left, left.session_id), "=" if pair.same else "", _event(pair.right, right.session_id))
        for pair in result.steps
    ]
    out.table(("STEP", "LEFT", "", "RIGHT"), rows, styles=("dim", "", "green"))


def _event(event, session_id: str) -> str:
    from eventstore.history import short, summary

    if event is None:
        return "-"
    where = f"v{event.version}" if event.session_id == session_id else f"{event.session_id}@{event.version}"
    return f"{where} {event.type}: {short(summary(event), 44)}"


# --- parsers ---------------------------------------------------------------------------------------


def add_parsers(sub: argparse._SubParsersAction) -> None:
    blame = sub.add_parser("blame", help="for each value of a session's state, the event that last set it")
    session_arguments(blame)
    blame.add_argument("--section", metavar="S", help="only this state section")
    at = blame.add_mutually_exclusive_group()
    at.add_argument("--at-version", type=version_arg, metavar="N", help="the state at version N (default: the end)")
    at.add_argument("--at", metavar="TIME", help="ISO 8601: the state after the last event recorded at or before it")
    blame.set_defaults(func=cmd_blame)

    diff = sub.add_parser(
        "diff",
        help="two points of history: SESSION A B, or SESSION@A OTHER@B (e.g. a fork against its source)",
    )
    diff.add_argument("points", nargs="+", metavar="POINT", help="SESSION A B | SESSION@A OTHER@B (@N optional)")
    diff.add_argument("--tenant", help="the sessions' tenant (default: $AGENTLOG_TENANT)")
    diff.add_argument("--json", action="store_true", help="machine-readable output")
    diff.add_argument("--source", choices=["postgres", "kafka"], default="postgres", help="read the store or the topic")
    diff.add_argument("--all-partitions", action="store_true", help="with --source kafka: scan every partition")
    diff.set_defaults(func=cmd_diff, parser=diff)
