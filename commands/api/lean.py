"""The lean request path of the command API's writes: what FastAPI's handler does for them, minus
the per-request dependency machinery (the profile had `solve_dependencies` and what it calls at a
fifth of the API's CPU).

Invariant: the lean handler answers only requests FastAPI's handler would accept, with the same
values in the same order: the body decoded once with FastAPI's own decoder (json.loads; orjson
would read 10**30 as a float), then the caller authenticated, then path and body validated with
the route's own ModelFields, then the endpoint called. Every other request goes to FastAPI's
handler unchanged: no body, a media type other than application/json, a body that is not JSON,
an invalid path parameter or body. So every error answer, and the OpenAPI document, stay exactly
FastAPI's. A request the lean path has authenticated is not authenticated again by the fallback
(`require_writer` reuses the principal), so the rate limit counts it once.

A route whose endpoint takes anything but path parameters, one body, the Request, the writer
check and the Runner (query or header parameters, other dependencies, an embedded body) keeps
FastAPI's handler: the lean path never guesses.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any

import fastapi.routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from agentlog.edge.auth import authenticate
from commands.api.dependencies import get_runner, require_writer

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# How FastAPI (0.16x) hands an included route its effective dependant (the router's dependencies
# added) while building its handler; a FastAPI without it builds the route itself with them.
_EFFECTIVE_ROUTE: ContextVar[Any] | None = getattr(fastapi.routing, "_effective_route_context_var", None)


def _effective_dependant(route: APIRoute) -> tuple[Dependant, bool]:
    context = _EFFECTIVE_ROUTE.get() if _EFFECTIVE_ROUTE is not None else None
    if context is not None and getattr(context, "original_route", None) is route:
        return context.dependant, bool(context._embed_body_fields)
    return route.dependant, bool(route._embed_body_fields)


def _leanable(dependant: Dependant, embedded: bool) -> bool:
    if embedded or len(dependant.body_params) > 1:
        return False
    if dependant.query_params or dependant.header_params or dependant.cookie_params:
        return False
    if (
        dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
    ):
        return False
    return all(dep.call in (require_writer, get_runner) and not dep.dependencies for dep in dependant.dependencies)


def lean_handler(route: APIRoute, fallback: Handler) -> Handler:
    """The handler of `route`: lean when its endpoint has the shape of a write, else `fallback`."""
    dependant, embedded = _effective_dependant(route)
    if not _leanable(dependant, embedded) or not dependant.body_params or dependant.call is None:
        return fallback
    endpoint: Callable[..., Awaitable[Response]] = dependant.call
    path_fields = [(field.name, field.alias, ("path", field.alias)) for field in dependant.path_params]
    path_validators = {field.name: field for field in dependant.path_params}
    body_field = dependant.body_params[0]
    request_name = dependant.request_param_name
    runner_names = [dep.name for dep in dependant.dependencies if dep.call is get_runner and dep.name]
    authenticates = any(dep.call is require_writer for dep in dependant.dependencies)

    async def handle(request: Request) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type")
        if not body or content_type != "application/json":
            return await fallback(request)
        try:
            payload: Any = json.loads(body)  # FastAPI's decoder: orjson reads 10**30 as a float
        except Exception:  # FastAPI's handler answers every decoding failure (400)
            return await fallback(request)
        if authenticates:
            await authenticate(request, "writer")
        values: dict[str, Any] = {}
        path_params = request.path_params
        for name, alias, loc in path_fields:
            value, errors = path_validators[name].validate(path_params.get(alias), values, loc=loc)
            if errors:
                return await fallback(request)
            values[name] = value
        value, errors = body_field.validate(payload, values, loc=("body",))
        if errors:
            return await fallback(request)
        values[body_field.name] = value
        if request_name is not None:
            values[request_name] = request
        if runner_names:
            runner = request.app.state.runner
            for name in runner_names:
                values[name] = runner
        return await endpoint(**values)

    return handle
