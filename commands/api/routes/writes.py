"""What every write of the command API has in common: the router that makes them, and how the
OpenAPI document states their answers and request headers.

Invariant: every write route is on a router from `write_router`, so it runs only for a writer
key (checked before the body is read) and its document lists what commands/api/dependencies.py
does for every write: the success body {session_id, version, position, event_ids} with its ETag
(and Idempotent-Replayed on a repeat), the If-Match, Idempotency-Key and correlation headers it
reads, and the errors any write can answer. The routes answer with the Response the CommandRunner
builds, so nothing here touches what is sent.

How a write runs (`WriteRoute.get_route_handler`, commands/api/lean.py): the common request -- a
JSON body that is valid, with valid path parameters -- goes through a lean handler that
authenticates, decodes the body once (orjson), validates path and body with the very fields
FastAPI built for the route, and calls the endpoint; anything else (no body, another media type,
JSON orjson refuses, an invalid parameter or body) is handed to FastAPI's own handler, so every
error answer is exactly FastAPI's and the OpenAPI document is untouched.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from agentlog.edge.openapi import AUTHENTICATED, operation_id, problems
from commands.api.dependencies import require_writer
from commands.api.lean import lean_handler
from eventstore.ids import ID_PATTERN


class CommandAnswer(BaseModel):
    """The answer of every write (and what a repeat with the same Idempotency-Key answers again)."""

    model_config = ConfigDict(extra="forbid")  # the document states every key (additionalProperties: false)

    session_id: str = Field(pattern=ID_PATTERN)
    version: int = Field(ge=0, description="the session's version after this request")
    position: int = Field(ge=0, description="global position of the session's last event (for ?min_position=)")
    event_ids: list[uuid.UUID] = Field(description="the events this request appended; empty for a no-op repeat")


SUCCESS_HEADERS: dict[str, Any] = {
    "ETag": {
        "description": 'the session\'s version as an entity tag, "<version>": send it back as If-Match',
        "required": True,
        "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
    },
    "Idempotent-Replayed": {
        "description": "present on the repeat of a request with the same Idempotency-Key: the first answer again",
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
    },
}

_ID = {"type": "string", "pattern": ID_PATTERN, "maxLength": 128}
REQUEST_HEADERS: list[dict[str, Any]] = [
    {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": 'the version the client expects the session at, "<version>" (unquoted accepted): 409 if not',
        "schema": {"type": "string", "pattern": '^\\s*("[0-9]{1,18}"|[0-9]{1,18})\\s*$'},
    },
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "a repeat with the same key answers the first answer and appends nothing",
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    },
    {"name": "X-Correlation-Id", "in": "header", "required": False, "schema": _ID},
    {"name": "X-Causation-Id", "in": "header", "required": False, "schema": _ID},
]

# Any write can answer these: a bad, oversized or non-JSON body, a reader key, a conflict or a
# rule of the session's state; a route whose path names a session also 404 (WriteRoute).
WRITE_PROBLEMS = problems(400, 403, 409, 413, 415, 422, *AUTHENTICATED)


class WriteRoute(APIRoute):
    """An APIRoute whose document states the write's success answer and request headers."""

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        if isinstance(kwargs.get("response_model"), DefaultPlaceholder):
            kwargs["response_model"] = CommandAnswer
        status = kwargs.get("status_code") or 200
        responses = dict(kwargs.get("responses") or {})
        responses[status] = {**responses.get(status, {}), "headers": SUCCESS_HEADERS}
        if "{session_id}" in path:
            responses.update(problems(404))
        kwargs["responses"] = responses
        extra = dict(kwargs.get("openapi_extra") or {})
        named = {p["name"] for p in extra.get("parameters", [])}
        extra["parameters"] = [*extra.get("parameters", []), *(p for p in REQUEST_HEADERS if p["name"] not in named)]
        kwargs["openapi_extra"] = extra
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return lean_handler(self, super().get_route_handler())


def write_router(prefix: str, tag: str) -> APIRouter:
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        dependencies=[Depends(require_writer)],
        responses=WRITE_PROBLEMS,
        route_class=WriteRoute,
        generate_unique_id_function=operation_id,
    )


def item_link(operation: str, item: str) -> dict[int | str, Any]:
    """`responses=` of a write that creates an item with a client-chosen id (`item`): its answer
    links to `operation` on that item (OpenAPI links: the session from the answer, the id from the
    request; an id the server chose is not in the answer, so then the link does not apply)."""
    link = {
        "operationId": operation,
        "parameters": {"session_id": "$response.body#/session_id", item: f"$request.body#/{item}"},
    }
    return {200: {"links": {operation: link}}}
