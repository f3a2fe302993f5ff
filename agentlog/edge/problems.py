"""Errors -> application/problem+json, in one place for both APIs.

Invariant: every error answer is problem+json with a stable `code`; bad input is a 4xx naming
the field and the reason, never a 500; a lost database or a pool with no free connection is 503
`infrastructure_unavailable` with Retry-After, never a 500. Unexpected exceptions never reach
Starlette's ServerErrorMiddleware (which re-raises after answering and so breaks the keep-alive
connection and logs twice): the pure ASGI `UnexpectedErrorMiddleware` logs the traceback once and
answers a bare 500 that reveals nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentlog.edge.responses import FastJSONResponse
from eventstore import db
from eventstore.errors import AgentlogError, InfrastructureError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = "1"
# FastAPI's answer when parsing the body fails other than by a JSON syntax error (e.g. a body
# nested deeper than the parser's recursion limit): still a malformed body, not an http_error.
_BODY_PARSE_FAILED = "There was an error parsing the body"


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    return FastJSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_body(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"https://agentlog.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }


def error_response(exc: AgentlogError):
    headers = {"Retry-After": RETRY_AFTER_S} if exc.retriable else None
    return problem_response(exc.status, exc.problem(), headers)


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """pydantic/FastAPI error dicts -> [{field, reason}], one naming for both APIs: a body field
    bare (`content`, `commands.0.content`, `body` for the body as a whole), anything else with its
    location (`path.session_id`, `query.limit`, `header.If-Match`), so a path parameter and a body
    field of the same name are never confused."""
    out = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())]
        if loc and loc[0] == "body":
            loc = loc[1:] or [loc[0]]
        out.append({"field": ".".join(loc) or "body", "reason": err.get("msg", "invalid")})
    return out


def _malformed_json(reason: str):
    return problem_response(
        400,
        problem_body(
            400,
            "malformed_json",
            "the body is not valid JSON",
            errors=[{"field": "body", "reason": reason or "not valid JSON"}],
        ),
    )


# Handlers take `Exception` (Starlette's handler type) and narrow: each is registered for its class.
async def _agentlog_error(request: Request, exc: Exception):
    assert isinstance(exc, AgentlogError)
    if exc.status >= 500:
        logger.error("%s on %s %s: %s", exc.code, request.method, request.url.path, exc.detail)
    return error_response(exc)


async def _connection_lost(request: Request, exc: Exception):
    # The text of a driver error may name hosts or users: the answer names only the kind.
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return error_response(InfrastructureError(f"the database is unavailable ({type(exc).__name__}); retry later"))


async def _request_validation(request: Request, exc: Exception):
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    invalid_json = [e for e in errors if e.get("type") == "json_invalid"]
    if invalid_json:
        return _malformed_json(str(invalid_json[0].get("ctx", {}).get("error", "")))
    return problem_response(
        422, problem_body(422, "invalid_input", "the request is not valid", errors=field_errors(errors))
    )


async def _validation(request: Request, exc: Exception):
    assert isinstance(exc, ValidationError)
    return problem_response(
        422,
        problem_body(
            422, "invalid_input", "the request is not valid", errors=field_errors(exc.errors(include_url=False))
        ),
    )


async def _http(request: Request, exc: Exception):
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.detail == _BODY_PARSE_FAILED:
        return _malformed_json("nested too deeply or not decodable")
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem_response(
        exc.status_code, problem_body(exc.status_code, code, str(exc.detail)), headers=getattr(exc, "headers", None)
    )


class UnexpectedErrorMiddleware:
    """Catches what no handler mapped: logs it once, answers 500 problem+json, never re-raises."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if not started:  # else the server ends the half-sent answer and the connection
                await problem_response(500, problem_body(500, "internal_error", "an unexpected error occurred"))(
                    scope, receive, send
                )


def install(app: FastAPI) -> None:
    """The exception handlers of both APIs (the catch-all is UnexpectedErrorMiddleware)."""
    app.add_exception_handler(AgentlogError, _agentlog_error)
    for error in db.CONNECTION_ERRORS:
        app.add_exception_handler(error, _connection_lost)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
