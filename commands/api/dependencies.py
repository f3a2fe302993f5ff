"""What route functions get through `Depends`: the caller's principal and a CommandRunner.

Invariant: every write goes through `CommandRunner.run`, which authenticates (writer or admin),
scopes the session to the key's tenant, reads If-Match and Idempotency-Key the same way for every
endpoint, records metrics, and answers {session_id, version, position, event_ids} with an ETag.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Path, Request

from agentlog.edge.auth import authenticate
from agentlog.edge.keys import KeyVerifier, Principal
from agentlog.edge.request_ids import correlation_ids
from agentlog.edge.responses import FastJSONResponse
from agentlog.telemetry import TRACING
from commands.api.metrics import CommandMetrics
from commands.handler import CommandHandler, CommandRequest
from commands.models import Command
from eventstore.errors import AgentlogError, ValidationProblemError
from eventstore.ids import ID_MAX_LENGTH, ID_PATTERN

_IF_MATCH = re.compile(r'\s*(?:"(\d{1,18})"|(\d{1,18}))\s*')
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def _invalid_header(name: str, reason: str) -> ValidationProblemError:
    return ValidationProblemError(
        f"the {name} header is not valid", errors=[{"field": f"header.{name}", "reason": reason}]
    )


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    match = _IF_MATCH.fullmatch(value)
    if match is None:
        raise _invalid_header("If-Match", 'must be a session version as an entity tag: "<n>"')
    return int(match.group(1) or match.group(2))


def parse_idempotency_key(value: str | None) -> str | None:
    if value is not None and _IDEMPOTENCY_KEY.fullmatch(value) is None:
        raise _invalid_header("Idempotency-Key", "must be 1-255 visible ASCII characters")
    return value


def request_hash(method: str, path: str, commands: Sequence[Command]) -> str:
    """Fingerprint of what a request asks for, to tell a repeat from a reused key."""
    payload = [method, path, [c.model_dump(mode="json") for c in commands]]
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class CommandRunner:
    handler: CommandHandler
    verifier: KeyVerifier
    metrics: CommandMetrics

    async def run(
        self, request: Request, name: str, session_id: str, commands: Sequence[Command], *, success_status: int = 200
    ) -> FastJSONResponse:
        started = time.perf_counter()
        recorded_ns = time.time_ns() if TRACING.on else 0
        try:
            principal: Principal = request.state.principal
            idempotency_key = parse_idempotency_key(request.headers.get("idempotency-key"))
            answer = await self.handler.handle(
                CommandRequest(
                    tenant=principal.tenant,
                    session_id=session_id,
                    commands=commands,
                    expected_version=parse_if_match(request.headers.get("if-match")),
                    idempotency_key=idempotency_key,
                    request_hash=request_hash(request.method, request.url.path, commands)
                    if idempotency_key is not None
                    else "",
                    metadata=_metadata(request, principal),
                )
            )
        except AgentlogError as exc:
            self.metrics.commands.labels(name, exc.code).inc()
            raise
        elapsed = time.perf_counter() - started
        self.metrics.latency.labels(name).observe(elapsed)
        self.metrics.stage.observe(elapsed)
        if TRACING.on and answer.events:
            from agentlog.telemetry.spans import model_call_spans

            model_call_spans(answer.events, session_id, recorded_ns)
        self.metrics.commands.labels(name, "replayed" if answer.replayed else "ok").inc()
        body = answer.body  # built once, serialised once (orjson)
        headers = {"ETag": f'"{body["version"]}"'}
        if answer.replayed:
            headers["Idempotent-Replayed"] = "true"
        # The status is the route's: a replay comes from the same method and path (the request
        # hash covers them), so it answers with the first answer's status.
        return FastJSONResponse(body, status_code=success_status, headers=headers)


def _metadata(request: Request, principal: Principal) -> dict[str, Any]:
    correlation, causation = correlation_ids(request.headers)
    return {
        "correlation_id": correlation,
        "causation_id": causation,
        "actor": principal.key_id,
        "tenant": principal.tenant,
    }


async def get_runner(request: Request) -> CommandRunner:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, per request
    return request.app.state.runner


async def require_writer(request: Request) -> Principal:
    """Router dependency: runs before the body is validated, so a stranger learns nothing.

    A request the lean path (commands/api/lean.py) authenticated before handing it to FastAPI's
    handler is not authenticated twice (nor counted twice by the rate limit)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        return await authenticate(request, "writer")
    return principal.require("writer")  # whoever authenticated it, the role is checked here


SessionId = Annotated[str, Path(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)]
ItemId = SessionId
Runner = Annotated[CommandRunner, Depends(get_runner)]
