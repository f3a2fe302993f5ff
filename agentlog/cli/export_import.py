"""`agentlog export SESSION > case.jsonl` and `agentlog import case.jsonl [--as NEW_ID]`: a
session's stored events as a file (eventstore/export_file.py), and back into a log as a new
session (eventstore/session_import.py), e.g. the golden sessions of tests/golden/.

export writes the file to stdout (and nothing else there); import reads one or more files, each
checked completely before anything is written, each appended in its own transaction through
the store's outbox, and prints each new session id on stdout, a note on stderr (or one JSON
document per file with --json). Exit codes: 0 done, 1 an agentlog error (unknown session, an
invalid file, a session that exists), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from agentlog.cli.timetravel import TENANT_ENV, TenantSettings, event_store, print_json, tenant_of

# --- export ----------------------------------------------------------------------------------------


async def _export(args: argparse.Namespace, tenant: str) -> int:
    from agentlog.cli.replay_sources import ReplaySettings, read_from_postgres
    from agentlog.cli.timetravel import ProgressBar
    from eventstore.export_file import lines

    settings = ReplaySettings()
    progress = ProgressBar(f"reading {args.session}", settings.progress_every)
    async with event_store(args.settings) as store:
        read = await read_from_postgres(store, tenant, args.session, page_size=settings.page_size, progress=progress)
    out = sys.stdout.buffer
    for line in lines(tenant, args.session, read.events):
        out.write(line)
    out.flush()
    return len(read.events)


def cmd_export(args: argparse.Namespace) -> int:
    tenant = tenant_of(args)
    count = asyncio.run(_export(args, tenant))
    print(f"exported {count} events of {args.session} (tenant {tenant})", file=sys.stderr)
    return 0


# --- import ----------------------------------------------------------------------------------------


def _read_file(path: str):
    from eventstore.export_file import ExportFileInvalidError, parse

    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise ExportFileInvalidError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        return parse(data.splitlines())
    except ExportFileInvalidError as exc:
        raise ExportFileInvalidError(f"{path} {exc.detail}", path=path, **exc.extra) from None


async def _import(args: argparse.Namespace, files: list) -> list:
    from eventstore.session_import import import_session

    results = []
    async with event_store(args.settings) as store:
        for path, exported in files:
            tenant = args.tenant or TenantSettings().tenant or exported.tenant
            session_id = args.as_id or exported.session_id
            result = await import_session(store.pool, exported, tenant=tenant, session_id=session_id)
            results.append((path, exported, tenant, result))
    return results


def cmd_import(args: argparse.Namespace) -> int:
    from eventstore.ids import is_valid_id

    if args.as_id is not None:
        if len(args.files) > 1:
            args.parser.error("--as takes one file: each file is a session of its own")
        if not is_valid_id(args.as_id):
            args.parser.error(f"--as {args.as_id!r} is not a valid session id (letters, digits and ._:@-)")
    files = [(path, _read_file(path)) for path in args.files]  # every file checked before any write
    for path, exported, tenant, result in asyncio.run(_import(args, files)):
        if args.json:
            print_json(
                {
                    **result.body(),
                    "tenant": tenant,
                    "file": path,
                    "source_session_id": exported.session_id,
                    "source_tenant": exported.tenant,
                }
            )
            continue
        print(
            f"imported {len(exported.events)} events of {exported.session_id} from {path} into tenant {tenant} "
            f"(version {result.version}, position {result.position}):",
            file=sys.stderr,
        )
        print(result.session_id)
    return 0


# --- parsers ---------------------------------------------------------------------------------------


def add_parsers(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="a session's stored events as JSON lines, on stdout")
    export.add_argument("session", help="the session id")
    export.add_argument("--tenant", help=f"the session's tenant (default: ${TENANT_ENV})")
    export.set_defaults(func=cmd_export)

    imp = sub.add_parser("import", help="append exported sessions as new sessions (with their recorded times)")
    imp.add_argument("files", nargs="+", metavar="FILE", help="files written by agentlog export (- for stdin)")
    imp.add_argument("--as", dest="as_id", metavar="NEW_ID", help="the new session's id (default: the file's)")
    imp.add_argument("--tenant", help=f"the tenant to import into (default: ${TENANT_ENV}, else the file's tenant)")
    imp.add_argument("--json", action="store_true", help="one JSON document per file")
    imp.set_defaults(func=cmd_import, parser=imp)
