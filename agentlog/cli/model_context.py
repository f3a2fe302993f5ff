"""`agentlog context SESSION (--call CALL_ID | --at-version N | --at TIME) [--format json|openai|anthropic]`:
the exact request a model got at a call, rebuilt through its references (eventstore/context.py).

Without --format it prints a view for people (messages one per line); `--format json` (or
`--json`) prints the record with the request rebuilt, exactly; `--format openai|anthropic` the
body of that provider's API. --at-version N takes the last model call at or before version N.
Exit codes as for replay: 1 for an unknown session, call or version, 2 for bad usage.
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


async def _context_on_store(args: argparse.Namespace, tenant: str, at_version: int | None):
    """The call's context from the nearest fold snapshot at or before the version (its knowledge
    part holds the context index, eventstore/knowledge.py), not from version 1."""
    from eventstore.fold_snapshots import fold_to
    from eventstore.replay import Target

    target = Target("version", at_version) if at_version is not None else Target()
    async with event_store(args.settings) as store:
        version, _ = await resolve_on_store(store, tenant, args.session, target, field="at_version")
        point = await fold_to(store, tenant, args.session, version, with_blame=False, with_knowledge=True)
    assert point.knowledge is not None  # asked for
    return point.knowledge.index.context_of(args.call, version)


def cmd_context(args: argparse.Namespace) -> int:
    from eventstore.context import context_at
    from eventstore.large_reads import gc_paused
    from eventstore.provider_formats import as_format
    from eventstore.replay import parse_time

    tenant = tenant_of(args)
    at_version = args.at_version
    if args.at is not None:
        at_version = asyncio.run(version_for_time(args, tenant, args.session, parse_time(args.at)))
    with gc_paused():  # an answer as large as the session (eventstore/large_reads.py)
        if args.source == "postgres":
            context = asyncio.run(_context_on_store(args, tenant, at_version)).to_json()
        else:
            events, _ = asyncio.run(read_lineage(args, tenant, args.session, at_version, field="at_version"))
            context = context_at(events, call_id=args.call).to_json()
    fmt = args.format or ("json" if args.json else None)
    if fmt is not None:
        print_json(as_format(context, fmt))
        return 0
    _print_view(Terminal(), context)
    return 0


def _short(value: Any, limit: int = 96) -> str:
    from eventstore.history import short

    return short(value, limit)


def _message_text(message: dict[str, Any]) -> str:
    parts = []
    if message.get("tool_call_id"):
        parts.append(f"({message['tool_call_id']})")
    if message.get("content") not in (None, "", []):
        parts.append(_short(message["content"]))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or call
        parts.append(f"[tool call {call.get('id')}: {function.get('name')} {_short(function.get('arguments'), 48)}]")
    return " ".join(parts) or "-"


def _print_view(out: Terminal, c: dict[str, Any]) -> None:
    usage = c["usage"]
    model = f"{c['provider']}/{c['model']}" if c["provider"] else c["model"]
    facts = [f"agent {c['agent']}" if c["agent"] else None, model]
    if c["latency_ms"] is not None:
        facts.append(f"{c['latency_ms']} ms")
    if usage["input_tokens"] is not None:
        cached = f" ({usage['cached_tokens']} cached)" if usage["cached_tokens"] else ""
        facts.append(f"tokens {usage['input_tokens']} in{cached}, {usage['output_tokens'] or 0} out")
    out.line(out.style(f"model call {c['call_id']} of {c['session_id']} at version {c['version']}", "bold"))
    out.line("  " + ", ".join(f for f in facts if f))
    request = c["request"]
    if request["system"] is not None:
        out.line(f"{out.style('system:', 'cyan')} {_short(request['system'])}")
    names = [(t.get("function") or t).get("name") for t in request["tools"]]
    out.line(f"{out.style('tools:', 'cyan')} {', '.join(names) if names else '-'}")
    if request["parameters"]:
        out.line(f"{out.style('parameters:', 'cyan')} {_short(request['parameters'])}")
    out.line(out.style(f"messages ({len(request['messages'])}):", "cyan"))
    rows = [(i, m.get("role"), _message_text(m)) for i, m in enumerate(request["messages"])]
    out.table(("#", "ROLE", "CONTENT"), rows, styles=("dim", "yellow"))
    response = c["response"]
    if response["error"] is not None:
        outcome = f"error: {response['error']}"
    else:
        outcome = response["finish_reason"] or "answered"
    answer = _message_text({"content": response["content"], "tool_calls": response["tool_calls"]})
    out.line(f"{out.style('response:', 'green')} {outcome}: {answer}")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    context = sub.add_parser("context", help="the exact request a model got at a call")
    session_arguments(context)
    which = context.add_mutually_exclusive_group(required=True)
    which.add_argument("--call", metavar="CALL_ID", help="the model call's id")
    which.add_argument("--at-version", type=version_arg, metavar="N", help="the last model call at or before N")
    which.add_argument("--at", metavar="TIME", help="ISO 8601: the last model call recorded at or before it")
    context.add_argument(
        "--format", choices=["json", "openai", "anthropic"], help="JSON: the record, or a provider's API body"
    )
    context.set_defaults(func=cmd_context)
