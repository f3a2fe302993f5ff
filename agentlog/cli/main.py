"""`agentlog`: the one wiring point that names every component.

`main` is the process's entry point: it builds the shared settings once (pydantic-settings classes
are the only readers of the environment, nothing writes it) and hands them to the subcommand as
`args.settings`; a subcommand builds its component's own settings and passes both down. Each
subcommand opens what it needs and closes it on exit. Components of other packages are imported only when their subcommand runs, so the event
store never depends on them and nothing connects at import time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import TYPE_CHECKING

import asyncpg

from agentlog.cli.process import run_component, setup_logging, uvicorn_component, wait_for_database
from agentlog.stack.processes import StackError
from agentlog.stack.settings import StackSettings, shared_settings

if TYPE_CHECKING:
    from commands.api.settings import CommandsSettings
    from projections.settings import QueriesSettings
from eventstore.errors import AgentlogError

log = logging.getLogger("agentlog")


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


# --- stack, migrate, keys -------------------------------------------------------------------------


def cmd_stack(args: argparse.Namespace) -> int:
    from agentlog.stack.stack import Stack

    stack = Stack.from_settings(args.stack_settings)
    if args.action == "up":
        timings = asyncio.run(stack.up(log=lambda m: log.info(m)))
        print(f"postgres: {stack.database_url()}  (ready in {timings['postgres_s']:.1f}s)")
        print(f"kafka:    {stack.kafka_bootstrap()}  (ready in {timings['kafka_s']:.1f}s)")
        return 0
    if args.action == "down":
        stopped = stack.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing (none running that this stack started)"))
        return 0
    status = asyncio.run(stack.status())
    _print_json(status)
    return 0 if all(service.get("up") for service in status.values()) else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    from eventstore import migrations

    migrations.upgrade(args.settings.dsn(), args.revision)
    print(f"schema at {args.revision if args.revision != 'head' else migrations.head_revision()}")
    return 0


async def _create_key(dsn: str, tenant: str, role: str, description: str) -> str:
    from agentlog.edge import keys as auth
    from eventstore import db, migrations

    conn = await db.connect(dsn)
    try:
        await migrations.ensure_schema_current(conn)
        return await auth.create_key(conn, tenant, role, description)
    finally:
        await conn.close()


async def _with_keys_db(dsn: str, work):
    from eventstore import db, migrations

    conn = await db.connect(dsn)
    try:
        await migrations.ensure_schema_current(conn)
        return await work(conn)
    finally:
        await conn.close()


def cmd_keys_list(args: argparse.Namespace) -> int:
    from agentlog.edge import keys as auth

    for key in asyncio.run(_with_keys_db(args.settings.dsn(), lambda conn: auth.list_keys(conn, args.tenant))):
        state = f"revoked {key.revoked_at.isoformat()}" if key.revoked_at else "active"
        print(f"{key.key_id}\t{key.tenant}\t{key.role}\t{state}\t{key.description}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from agentlog.edge import keys as auth

    if not asyncio.run(_with_keys_db(args.settings.dsn(), lambda conn: auth.revoke_key(conn, args.key_id))):
        print(f"agentlog keys: no active key {args.key_id}", file=sys.stderr)
        return 1
    print(
        f"revoked {args.key_id}; it stops working within the auth cache TTL "
        f"({auth.DEFAULT_CACHE_TTL_S:g} s by default)",
        file=sys.stderr,
    )
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    try:
        key = asyncio.run(_create_key(args.settings.dsn(), args.tenant, args.role, args.description))
    except ValueError as exc:
        print(f"agentlog keys: {exc}", file=sys.stderr)
        return 2
    print(f"created a {args.role} key for tenant {args.tenant}; it is shown once:", file=sys.stderr)
    print(key)
    return 0


# --- long-running components ---------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    # --host/--port override the API's own settings object (AGENTLOG_<API>_HOST/_PORT).
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port)) if value}
    settings: CommandsSettings | QueriesSettings
    if args.api == "commands":
        from commands.api.settings import CommandsSettings

        settings = CommandsSettings().model_copy(update=overrides)
        if settings.workers > 1:
            return _serve_commands_workers(settings, args.settings)
        from commands.api.app import create_app as create_commands_app

        app = create_commands_app(settings, shared=args.settings)
        name = "command API"
    else:
        from projections.api.app import create_app as create_queries_app
        from projections.settings import QueriesSettings

        settings = QueriesSettings().model_copy(update=overrides)
        app = create_queries_app(settings, shared=args.settings)
        name = "query API"
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level=args.settings.log_level.lower(),
        timeout_graceful_shutdown=10,
    )
    return run_component(name, uvicorn_component(config), database=args.settings)


def _serve_commands_workers(settings, shared) -> int:
    """Several worker processes: uvicorn's supervisor owns the signals and the workers (each its
    own entry point, see commands.api.app.serve); SIGTERM after its graceful stop exits with 0."""
    import signal

    from commands.api.app import serve

    refused = wait_for_database("command API", shared)
    if refused is not None:
        return refused
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    serve(settings, shared=shared)
    return 0


def cmd_relay(args: argparse.Namespace) -> int:
    from outbox.relay import run_relay
    from outbox.settings import RelaySettings

    relay_settings = RelaySettings()
    return run_component(
        "relay",
        lambda stop: run_relay(args.settings, relay_settings, stop),
        database=args.settings,
        niceness=relay_settings.niceness,
        background=relay_settings.idle_cpu,
    )


def cmd_project(args: argparse.Namespace) -> int:
    from projections.projector.runner import run_projector
    from projections.settings import ProjectorSettings

    projector_settings = ProjectorSettings()
    return run_component(
        "projector",
        lambda stop: run_projector(args.settings, projector_settings, stop),
        database=args.settings,
        niceness=projector_settings.niceness,
        background=projector_settings.idle_cpu,
    )


def cmd_dev(args: argparse.Namespace) -> int:
    from agentlog.dev import run_dev

    return run_dev(args.settings, args.stack_settings, with_stack=not args.no_stack)


# --- parser ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentlog", description="Event sourcing for AI agent sessions.")
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="the local PostgreSQL and Kafka")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.set_defaults(func=cmd_stack)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(func=cmd_migrate)

    dev = sub.add_parser("dev", help="start everything locally in the foreground")
    dev.add_argument("--no-stack", action="store_true", help="use the services the environment names")
    dev.set_defaults(func=cmd_dev)

    serve = sub.add_parser("serve", help="run one HTTP API")
    serve.add_argument("api", choices=["commands", "queries"])
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("relay", help="publish the outbox to Kafka").set_defaults(func=cmd_relay)
    sub.add_parser("project", help="run the projectors").set_defaults(func=cmd_project)

    keys = sub.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_action", required=True)
    create = keys_sub.add_parser("create", help="create a key; prints it once on its own line")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", choices=["reader", "writer", "admin"], default="writer")
    create.add_argument("--description", default="")
    create.set_defaults(func=cmd_keys)
    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant")
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_keys_revoke)

    from agentlog.cli import blame_diff as cli_blame_diff
    from agentlog.cli import export_import as cli_export_import
    from agentlog.cli import model_context as cli_context
    from agentlog.cli import operations as cli_operations
    from agentlog.cli import timetravel as cli_replay
    from agentlog.cli import usage as cli_usage

    cli_operations.add_parsers(sub)
    cli_replay.add_parsers(sub)
    cli_context.add_parsers(sub)
    cli_blame_diff.add_parsers(sub)
    cli_export_import.add_parsers(sub)
    cli_usage.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.stack_settings = StackSettings()
    args.settings = shared_settings(args.stack_settings)
    setup_logging(args.settings.log_level)
    try:
        return args.func(args) or 0
    except (StackError, AgentlogError) as exc:
        print(f"agentlog {args.command}: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"agentlog {args.command}: cannot reach a service: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
