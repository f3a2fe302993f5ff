"""`agentlog projections rebuild | rollback | drop-old NAME`: the operator's side of rebuilds.

Invariants: the result goes to stdout (a short report, or JSON with --json), progress to stderr.
Exit codes: 0 swapped (or, with --verify-only, no drift), 3 drift found and nothing swapped,
1 interrupted or failed (a rerun resumes), 2 bad arguments (before any connection).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from projections.rebuild.report import render

EXIT_DRIFT = 3
REBUILD_ONLY = ("source", "session", "sessions_from", "tenant", "verify_only", "accept_drift", "drift_report")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", choices=["store", "kafka"], default="store", help="rebuild: read the event store or the topic"
    )
    parser.add_argument(
        "--session", action="append", default=[], metavar="ID", help="rebuild only this session's rows (repeatable)"
    )
    parser.add_argument("--sessions-from", metavar="FILE", help="rebuild the sessions listed in FILE (ID or TENANT ID)")
    parser.add_argument("--tenant", help="with --session: only that tenant's session of that id")
    parser.add_argument("--verify-only", action="store_true", help="rebuild: report drift, change nothing live")
    parser.add_argument("--accept-drift", action="store_true", help="rebuild: swap even if the rebuild differs")
    parser.add_argument("--drift-report", metavar="FILE", help="rebuild: write every difference to FILE (JSON lines)")
    parser.add_argument("--examples", type=int, default=10, metavar="N", help="rebuild: differences shown per table")


def refused(args: argparse.Namespace) -> str | None:
    """Why the arguments cannot work together (checked before connecting), or None."""
    if args.action != "rebuild":
        given = [f"--{o.replace('_', '-')}" for o in REBUILD_ONLY if getattr(args, o) not in (None, False, [], "store")]
        return f"{', '.join(given)} only apply to rebuild" if given else None
    if args.verify_only and args.accept_drift:
        return "--verify-only changes nothing live; --accept-drift has nothing to accept"
    if args.examples < 0:
        return "--examples must be >= 0"
    if (args.session or args.sessions_from) and args.name == "all":
        return "--session rebuilds one projection at a time"
    if (args.session or args.sessions_from) and args.source == "kafka":
        return "--session rebuilds from the event store; --source kafka rebuilds whole projections"
    if args.tenant and not (args.session or args.sessions_from):
        return "--tenant goes with --session"
    if args.sessions_from and not Path(args.sessions_from).is_file():
        return f"--sessions-from: no such file {args.sessions_from}"
    return None


def sessions_of(args: argparse.Namespace) -> list[tuple[str | None, str]]:
    """(tenant or None for every tenant, session id) from --session and --sessions-from."""
    wanted: list[tuple[str | None, str]] = [(args.tenant, s) for s in args.session]
    if args.sessions_from:
        for line in Path(args.sessions_from).read_text(encoding="utf-8").splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) == 1:
                wanted.append((args.tenant, words[0]))
            elif len(words) == 2:
                wanted.append((words[0], words[1]))
            elif words:
                raise ValueError(f"--sessions-from: a line is 'ID' or 'TENANT ID', not {line!r}")
    return list(dict.fromkeys(wanted))


async def _rebuild(args: argparse.Namespace) -> dict[str, Any]:
    from eventstore import db
    from projections.rebuild.job import ProjectionRebuild
    from projections.rebuild.progress import ProgressLine
    from projections.rebuild.sessions import SessionRebuild
    from projections.rebuild.sources import KafkaSource, StoreSource

    settings = args.settings
    pool = await db.create_pool(settings.dsn(), min_size=1, max_size=3)
    line = ProgressLine(sys.stderr)
    try:
        options = dict(
            verify_only=args.verify_only,
            accept_drift=args.accept_drift,
            examples=args.examples,
            drift_report=args.drift_report,
        )
        if args.session or args.sessions_from:
            job = SessionRebuild(pool, args.name, sessions_of(args), **options)
            result = (await job.run()).as_dict()
        else:
            source = (
                KafkaSource(settings.kafka_bootstrap_servers, settings.kafka_topic)
                if args.source == "kafka"
                else StoreSource(pool)
            )
            rebuild = ProjectionRebuild(
                pool, args.name, batch_size=args.batch_size, source=source, on_progress=line, **options
            )
            result = (await rebuild.run()).as_dict()
    finally:
        await pool.close()
    line.finish(f"{result['projection']}: {result['status']} in {result['seconds']:.1f}s")
    return result


def render_rebuild(result: dict[str, Any]) -> str:
    name, status = result["projection"], result["status"]
    drift = result.get("drift")
    if status == "swapped" and len(result.get("versions", {})) > 1:
        swapped = ", ".join(f"{p} v{v}" for p, v in result["versions"].items())
        head = f"{name}: swapped in {swapped} ({result['events']} events); the previous versions are kept"
    elif status == "swapped":
        head = f"{name}: swapped in as version {result['version']} ({result['events']} events)"
        if result.get("retired_version"):
            head += f"; version {result['retired_version']} kept for `agentlog projections rollback {name}`"
    elif status == "verified":
        head = f"{name}: verified only, nothing changed"
    elif status == "drift_refused":
        head = f"{name}: drift found, nothing swapped (rerun with --accept-drift to swap it anyway)"
    elif status == "interrupted":
        return f"{name}: interrupted after {result['events']} events; run it again to resume"
    else:
        head = f"{name}: {status}"
    for session in result.get("sessions", []):
        head += f"\n  {session['tenant']}/{session['session_id']}: {session['status']} (v{session['version']})"
    if drift is None:
        return head
    if drift["clean"]:
        return head + f"\ndrift: none ({drift['seconds']:.2f}s)"
    return head + f"\ndrift: {drift['differences']} differences\n" + render(drift)


def cmd_rebuild(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_rebuild(args))
    except ValueError as exc:
        print(f"agentlog projections rebuild: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str) if args.json else render_rebuild(result))
    if result["status"] in ("swapped", "rebuilt") or (result["status"] == "verified" and result["drift"]["clean"]):
        return 0
    return EXIT_DRIFT if result["status"] in ("verified", "drift_refused") else 1


async def _retired(args: argparse.Namespace) -> dict[str, Any]:
    from eventstore import db
    from projections.rebuild import retired
    from projections.rebuild.job import resolve
    from projections.settings import DEFAULT_GROUP

    projection = resolve(args.name)
    pool = await db.create_pool(args.settings.dsn(), min_size=1, max_size=3)
    try:
        if args.action == "rollback":
            from projections.read_models.catalog import PROJECTIONS

            summary = await retired.rollback(pool, projection, PROJECTIONS, projector=DEFAULT_GROUP)
        else:
            summary = await retired.drop_old(pool, projection, projector=DEFAULT_GROUP)
    finally:
        await pool.close()
    return summary.as_dict()


def cmd_retired(args: argparse.Namespace) -> int:
    """rollback (exchange live and the kept previous version) or drop-old (drop the kept one)."""
    result = asyncio.run(_retired(args))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    elif result["status"] == "rolled_back":
        print(
            f"{result['projection']}: version {result['live_version']} is live again "
            f"({result['caught_up']} events applied since the swap); version {result['retired_version']} kept"
        )
    else:
        print(
            f"{result['projection']}: version {result['retired_version']} dropped; version {result['live_version']} is live"
        )
    return 0
