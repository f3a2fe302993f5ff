"""Time-travel subcommands of `agentlog`: replay, history and fork.

replay and history only read (from Postgres, or from the Kafka topic with a group-less consumer);
fork appends one event through the store like any command. Results go to stdout (one JSON
document with --json; one JSON object per line for --step --json), progress and errors to stderr.
Exit codes: 0 done, 1 an agentlog error (unknown session, target not in the session, services
unreachable), 2 bad usage. The fork itself is a command (commands/fork.py).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from commands.fork import fork_session
from eventstore.errors import InfrastructureError, ReplayTargetError
from eventstore.replay import Target, parse_time

TENANT_ENV = "AGENTLOG_TENANT"


class TenantSettings(BaseSettings):
    """The default tenant of the time-travel commands when --tenant is not given."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    tenant: str | None = Field(default=None, validation_alias=TENANT_ENV)


def print_json(value, *, indent: int | None = 2) -> None:
    print(json.dumps(value, indent=indent, default=str, ensure_ascii=False), flush=indent is None)


class ProgressBar:
    """Progress of a long read or fold on stderr: a bar on a terminal, a line every N otherwise.

    Silent for work smaller than `every` events, so short replays print nothing but the result.
    """

    def __init__(self, label: str, every: int, stream=sys.stderr) -> None:
        self._label, self._every, self._stream = label, every, stream
        self._tty = stream.isatty()
        self._last = 0

    def __call__(self, done: int, total: int) -> None:
        if max(done, total) < self._every or (done - self._last < self._every and done != total):
            return
        self._last = done
        if total:
            share = done / total
            text = f"{self._label}: {done}/{total} ({share:.0%})"
            if self._tty:
                bar = "#" * int(share * 30)
                text = f"\r{self._label}: [{bar:<30}] {done}/{total}"
        else:
            text = f"{self._label}: {done}"
        end = "" if self._tty and done != total else "\n"
        print(text, end=end, file=self._stream, flush=True)


def tenant_of(args: argparse.Namespace) -> str:
    tenant = args.tenant or TenantSettings().tenant
    if not tenant:
        print(f"agentlog {args.command}: --tenant is required (or set {TENANT_ENV})", file=sys.stderr)
        raise SystemExit(2)
    return tenant


def _target(args: argparse.Namespace) -> Target:
    if args.to_version is not None:
        return Target("version", args.to_version)
    if args.at is not None:
        return Target("time", parse_time(args.at))
    if args.to_checkpoint is not None:
        return Target("checkpoint", args.to_checkpoint)
    return Target()


@asynccontextmanager
async def event_store(settings=None) -> AsyncIterator:
    """An event store on the shared settings' database (`args.settings`, built by the CLI main)."""
    from eventstore import db, migrations
    from eventstore.store import EventStore

    if settings is None:  # a caller that has no args at hand
        from agentlog.stack.settings import shared_settings

        settings = shared_settings()
    try:
        pool = await db.create_pool(settings.dsn(), min_size=1, max_size=2)
    except (TimeoutError, OSError) as exc:
        raise InfrastructureError(f"cannot reach the event store database (AGENTLOG_DATABASE_URL): {exc}") from exc
    try:
        async with pool.acquire() as conn:
            await migrations.ensure_schema_current(conn)
        yield EventStore(pool)
    finally:
        await pool.close()


async def _read(args: argparse.Namespace, tenant: str, to_version: int | None):
    from agentlog.cli import replay_sources as sources

    settings = sources.ReplaySettings()
    progress = ProgressBar(f"reading {args.session} from {args.source}", settings.progress_every)
    if args.source == "kafka":
        shared = args.settings
        return await sources.read_from_kafka(
            shared.kafka_bootstrap_servers,
            shared.kafka_topic,
            tenant,
            args.session,
            all_partitions=args.all_partitions,
            idle_timeout_s=settings.kafka_idle_timeout_s,
            progress=progress,
        )
    async with event_store(args.settings) as store:
        return await sources.read_from_postgres(
            store,
            tenant,
            args.session,
            to_version=to_version,
            page_size=settings.page_size,
            progress=progress,
        )


async def read_lineage(
    args: argparse.Namespace, tenant: str, session_id: str, to_version: int | None, *, field: str, label: str = ""
):
    """The session's lineage (eventstore/lineage.py) up to `to_version`, from the chosen source,
    and the session's own last version; a version past the end is a ReplayTargetError naming
    `field`."""
    from agentlog.cli import replay_sources as sources
    from eventstore.lineage import read_lineage as expand

    settings = sources.ReplaySettings()
    last_versions: dict[str, int] = {}

    async def read_with(store, sid: str, upto: int | None):
        if store is None:
            shared = args.settings
            read = await sources.read_from_kafka(
                shared.kafka_bootstrap_servers,
                shared.kafka_topic,
                tenant,
                sid,
                all_partitions=args.all_partitions,
                idle_timeout_s=settings.kafka_idle_timeout_s,
                to_version=upto,
            )
            events = read.events
        else:
            read = await sources.read_from_postgres(store, tenant, sid, to_version=upto, page_size=settings.page_size)
            events = read.events
        last_versions.setdefault(sid, read.last_version)
        return events

    async def run(store):
        events = await expand(lambda sid, upto: read_with(store, sid, upto), session_id, to_version)
        last = last_versions[session_id]
        if to_version is not None and to_version > last:
            raise ReplayTargetError(
                f"{label or '--' + field.replace('_', '-')} {to_version} is outside the session"
                f"{' ' + session_id if label else ''}, which has versions 1 to {last}",
                field=field,
                last_version=last,
            )
        return events, last

    if args.source == "kafka":
        return await run(None)
    async with event_store(args.settings) as store:
        return await run(store)


async def resolve_on_store(store, tenant: str, session_id: str, target: Target, *, field: str) -> tuple[int, int]:
    """(the version `target` names, the session's last version) from the store's indexes, without
    reading the session's events: for commands that start at a fold snapshot."""
    from eventstore.errors import SessionNotFoundError
    from eventstore.fold_snapshots import checkpoint_at, version_at

    last = await store.last_version(tenant, session_id)
    if last == 0:
        raise SessionNotFoundError(f"session {session_id!r} not found", session_id=session_id)
    if isinstance(target.value, datetime):  # a "time" target
        return await version_at(store.pool, tenant, session_id, target.value), last
    if target.kind == "version":
        version = int(target.value)  # type: ignore[arg-type]
        if version > last:
            raise ReplayTargetError(
                f"--{field.replace('_', '-')} {version} is outside the session, which has versions 1 to {last}",
                field=field,
                last_version=last,
            )
        return version, last
    if target.kind == "checkpoint":
        return await checkpoint_at(store.pool, tenant, session_id, str(target.value)), last
    return last, last


async def version_for_time(args: argparse.Namespace, tenant: str, session_id: str, moment) -> int:
    """`--at TIME` as the version of the last event recorded at or before it, from either source;
    a time before the session is the same ReplayTargetError as for `agentlog replay --at`."""
    from eventstore import replay as rp

    if args.source == "kafka":
        return rp.resolve((await _read(args, tenant, None)).events, Target("time", moment))
    async with event_store(args.settings) as store:
        version, _ = await resolve_on_store(store, tenant, session_id, Target("time", moment), field="at")
        return version


# --- replay ----------------------------------------------------------------------------------------


def _snapshot_replay(args: argparse.Namespace) -> bool:
    """Whether this replay can start at a fold snapshot: read from the store (the snapshots carry
    what the agents knew too, eventstore/knowledge.py); `--step` only from `--from-version`, since
    it prints every event from there."""
    return args.source == "postgres" and (not args.step or args.from_version is not None)


def _shows_transcript(args: argparse.Namespace) -> bool:
    return args.only not in (None, "sections") or (args.json and args.only is None)


async def _replay_from_snapshot(args: argparse.Namespace, tenant: str, target: Target):
    from eventstore.fold_snapshots import fold_to
    from eventstore.replay import Replayed
    from eventstore.transcript import Transcript

    knowledge = _shows_transcript(args)
    async with event_store(args.settings) as store:
        version, last = await resolve_on_store(store, tenant, args.session, target, field="to_version")
        point = await fold_to(store, tenant, args.session, version, with_blame=False, with_knowledge=knowledge)
        (last_event,) = await store.read_stream(tenant, args.session, from_version=version, to_version=version)
    shown = Transcript()  # no part of it is shown
    if point.knowledge is not None:
        shown = point.knowledge.transcript(model_calls=args.only in (None, "model-calls"))
    return Replayed(point.state, version, last, last_event), last, shown


def cmd_replay(args: argparse.Namespace) -> int:
    from agentlog.cli.replay_sources import ReplaySettings
    from eventstore import replay as rp
    from eventstore.large_reads import gc_paused

    tenant, target = tenant_of(args), _target(args)
    if args.from_version is not None and not args.step:
        print("agentlog replay: --from-version goes with --step", file=sys.stderr)
        return 2
    fold_progress = ProgressBar("folding", ReplaySettings().progress_every)
    if _snapshot_replay(args) and args.step:
        _print_steps(asyncio.run(_steps_from_snapshot(args, tenant, target, fold_progress)), args.json)
        return 0
    if _snapshot_replay(args):
        with gc_paused():  # what the agents knew is as large as the session (eventstore/large_reads.py)
            result, last, knowledge = asyncio.run(_replay_from_snapshot(args, tenant, target))
            _print_replayed(args, tenant, target, result, last, knowledge)
        return 0
    read = asyncio.run(_read(args, tenant, args.to_version))
    if args.step:
        first = args.from_version or 1
        _check_from_version(first, rp.resolve(read.events, target))
        shown = (s for s in rp.steps(read.events, target, progress=fold_progress) if s.event.version >= first)
        _print_steps(shown, args.json)
        return 0
    result = rp.replay(read.events, target, progress=fold_progress)
    knowledge = asyncio.run(_transcript(args, tenant, read.events[: result.version]))
    _print_replayed(args, tenant, target, result, read.last_version, knowledge)
    return 0


def _check_from_version(first: int, version: int) -> None:
    if first > version:
        raise ReplayTargetError(
            f"--from-version {first} is after the target, version {version}", field="from_version", version=version
        )


async def _steps_from_snapshot(args: argparse.Namespace, tenant: str, target: Target, progress):
    """The steps from `--from-version` M to the target: the state before M from the nearest fold
    snapshot (eventstore/fold_snapshots.py), then the events M.. read and stepped through (lazily,
    as they are printed)."""
    from eventstore import replay as rp
    from eventstore.fold_snapshots import fold_to
    from eventstore.state import SessionState

    first = args.from_version
    async with event_store(args.settings) as store:
        version, _ = await resolve_on_store(store, tenant, args.session, target, field="to_version")
        _check_from_version(first, version)
        if first > 1:
            state = (await fold_to(store, tenant, args.session, first - 1, with_blame=False)).state
        else:
            state = SessionState()
        events = await store.read_stream(tenant, args.session, from_version=first, to_version=version)
    return rp.steps_from(state, events, progress=progress, last=version)


async def _transcript(args: argparse.Namespace, tenant: str, events):
    """What the agents knew at the replayed version; a fork's inherited part is read from its
    source (eventstore/lineage.py)."""
    from eventstore.lineage import fork_origin
    from eventstore.transcript import transcript

    if fork_origin(events) is not None:
        events, _ = await read_lineage(args, tenant, args.session, events[-1].version, field="to_version")
    return transcript(events)


def _print_replayed(args, tenant: str, target: Target, result, last_version: int, knowledge) -> None:
    from agentlog.cli.replay_views import print_part, select
    from eventstore.history import history_entry

    if args.json:
        head = {
            "session_id": args.session,
            "tenant": tenant,
            "source": args.source,
            "target": target.to_json(),
            "version": result.version,
            "last_version": last_version,
            "last_event": history_entry(result.last_event),
        }
        print_json({**head, **select(result.state, knowledge, args.only)})
        return
    last = history_entry(result.last_event)
    print(
        f"session {args.session} (tenant {tenant}) at version {result.version} of "
        f"{last_version}, target {target.describe()}, source {args.source}"
    )
    print(f"last event: v{last['version']} {last['type']} at {last['recorded_at']}: {last['summary']}")
    if args.only:
        print_part(args.only, result.state, knowledge)
        return
    print_json(result.state.to_snapshot())


def _print_steps(steps, as_json: bool) -> None:
    from eventstore.history import history_entry

    for step in steps:
        entry = history_entry(step.event)
        if as_json:
            print_json({**entry, "diff": step.diff.to_json()}, indent=None)
            continue
        print(f"v{entry['version']:<4} {entry['type']:<22} {entry['recorded_at']}  {entry['summary']}")
        for path, value in step.diff.added.items():
            print(f"      + {path} = {_shown(value)}")
        for path, value in step.diff.removed.items():
            print(f"      - {path} (was {_shown(value)})")
        for path, (old, new) in step.diff.changed.items():
            print(f"      ~ {path}: {_shown(old, 32)} -> {_shown(new)}")


def _shown(value, limit: int = 72) -> str:
    from eventstore.history import short

    return '""' if value == "" else short(value, limit)


# --- history ---------------------------------------------------------------------------------------


def cmd_history(args: argparse.Namespace) -> int:
    from eventstore.history import history_entry

    tenant = tenant_of(args)
    entries = [history_entry(e) for e in asyncio.run(_read(args, tenant, None)).events]
    if args.json:
        print_json(
            {
                "session_id": args.session,
                "tenant": tenant,
                "source": args.source,
                "last_version": entries[-1]["version"],
                "events": entries,
            }
        )
        return 0
    print(f"{'VERSION':>7}  {'TYPE':<22} {'RECORDED_AT':<32} {'ACTOR/AGENT':<22} SUMMARY")
    for e in entries:
        who = "/".join(part for part in (e["actor"], e["agent"]) if part) or "-"
        print(f"{e['version']:>7}  {e['type']:<22} {e['recorded_at']:<32} {who:<22} {e['summary']}")
    return 0


# --- fork ------------------------------------------------------------------------------------------


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


async def _fork(args: argparse.Namespace, tenant: str):
    async with event_store() as store:
        return await fork_session(
            store, tenant, args.session, args.at_version, new_session_id=args.new_id, metadata={"actor": _cli_actor()}
        )


def cmd_fork(args: argparse.Namespace) -> int:
    tenant = tenant_of(args)
    result = asyncio.run(_fork(args, tenant))
    if args.json:
        print_json(
            {**result.body(), "tenant": tenant, "source_session_id": args.session, "source_version": args.at_version}
        )
        return 0
    print(
        f"forked {args.session} at version {args.at_version} into a new session "
        f"(version {result.version}, position {result.position}):",
        file=sys.stderr,
    )
    print(result.session_id)
    return 0


# --- parsers ---------------------------------------------------------------------------------------


def version_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a version number >= 1, not {text!r}")
    return value


def session_arguments(parser: argparse.ArgumentParser, *, sources: bool = True) -> None:
    parser.add_argument("session", help="the session id")
    parser.add_argument("--tenant", help=f"the session's tenant (default: ${TENANT_ENV})")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    if sources:
        parser.add_argument(
            "--source",
            choices=["postgres", "kafka"],
            default="postgres",
            help="read the event store (default) or the Kafka topic",
        )
        parser.add_argument(
            "--all-partitions",
            action="store_true",
            help="with --source kafka: scan every partition, not only the key's",
        )


def add_parsers(sub: argparse._SubParsersAction) -> None:
    replay = sub.add_parser("replay", help="a session's state at a version, time or checkpoint")
    session_arguments(replay)
    target = replay.add_mutually_exclusive_group()
    target.add_argument("--to-version", type=version_arg, metavar="N")
    target.add_argument("--at", metavar="TIME", help="ISO 8601; the last event recorded at or before")
    target.add_argument("--to-checkpoint", metavar="NAME", help="up to the last checkpoint NAME")
    replay.add_argument("--step", action="store_true", help="print every event with its state diff")
    replay.add_argument(
        "--from-version",
        type=version_arg,
        metavar="M",
        help="with --step: start at version M (the state before it from the nearest fold snapshot)",
    )
    replay.add_argument(
        "--only",
        choices=["sections", "conversation", "tools", "approvals", "model-calls"],
        help="only this part of what the agents knew",
    )
    replay.set_defaults(func=cmd_replay)

    history = sub.add_parser("history", help="a session's events, one line each")
    session_arguments(history)
    history.set_defaults(func=cmd_history)

    fork = sub.add_parser("fork", help="a new session starting from a session's state at a version")
    session_arguments(fork, sources=False)
    fork.add_argument("--at-version", type=version_arg, required=True, metavar="N")
    fork.add_argument("--new-id", help="the new session's id (default: generated)")
    fork.set_defaults(func=cmd_fork)
