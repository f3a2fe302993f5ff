"""Errors -> application/problem+json, in one place for the command API.

Invariant: every error answer is problem+json with a stable `code`; bad input is a 4xx naming
the field and the reason, never a 500. Unexpected exceptions are logged with their traceback and
answered with a bare 500 that reveals nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from agentlog.edge.responses import FastJSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from eventstore.errors import AgentlogError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    return FastJSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _problem(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": f"https://agentlog.dev/problems/{code}", "title": code.replace("_", " "),
            "status": status, "code": code, "detail": detail, **extra}


def field_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """pydantic/FastAPI error dicts -> [{field, reason}]; body fields are named without `body.`."""
    out = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())]
        if loc and loc[0] == "body":
            loc = loc[1:] or ["body"]
        out.append({"field": ".".join(loc) or "body", "reason": err.get("msg", "invalid")})
    return out


async def _agentlog_error(request: Request, exc: AgentlogError):
    if exc.status >= 500:
        logger.error("%s on %s %s: %s", exc.code, request.method, request.url.path, exc.detail)
    return problem_response(exc.status, exc.problem())


async def _request_validation(request: Request, exc: RequestValidationError):
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        reason = next(str(e.get("ctx", {}).get("error", "")) for e in errors
                      if e.get("type") == "json_invalid")
        return problem_response(400, _problem(
            400, "malformed_json", "the body is not valid JSON",
            errors=[{"field": "body", "reason": reason or "not valid JSON"}]))
    return problem_response(422, _problem(
        422, "invalid_input", "the request is not valid", errors=field_errors(errors)))


async def _validation(request: Request, exc: ValidationError):
    return problem_response(422, _problem(
        422, "invalid_input", "the request is not valid",
        errors=field_errors(exc.errors(include_url=False))))


async def _http(request: Request, exc: HTTPException):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem_response(exc.status_code, _problem(exc.status_code, code, str(exc.detail)),
                            headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception):
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(500, _problem(500, "internal_error", "an unexpected error occurred"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(AgentlogError, _agentlog_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
