"""The OpenAPI documents of both APIs: every answer described as it is sent.

Invariant: in a document finished by `install`, every operation lists each status it can answer
with the body that is sent: an error is application/problem+json with the `Problem` schema (the
keys of agentlog.edge.problems), a success has its own schema; every answer declares
`X-Request-Id` (agentlog.edge.request_ids sets it on all of them), every operation declares the
catch-all 500, an operation that can answer 401 declares the bearer key, and FastAPI's default
422 `HTTPValidationError` (a body the edge never sends) appears nowhere. An answer that names a
session links to the operations on a session (`_link_sessions`).

Routes state what is particular to them with `problems(...)` (which error statuses, e.g. 404
for a route about one session) and `success(...)`; what holds for every operation is added here,
once, when the document is first asked for.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from agentlog.edge.problems import PROBLEM_JSON

SECURITY_SCHEME = "apiKey"
_SCHEMAS = "#/components/schemas/"

FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "What is wrong with one field: `field` names it (body fields bare, e.g. `content` or "
    "`commands.0.content`; others with their location: `path.session_id`, `query.limit`, `header.If-Match`).",
    "required": ["field", "reason"],
    "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An error (RFC 9457 problem details) with a stable `code`; some codes carry more members.",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string", "description": "https://agentlog.dev/problems/<code>"},
        "title": {"type": "string", "description": "the code in words"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "description": "stable: clients branch on it"},
        "detail": {"type": "string", "description": "for people; may change"},
        "errors": {"type": "array", "items": {"$ref": _SCHEMAS + "FieldError"}},
        "current_version": {"type": "integer", "minimum": 0, "description": "version_conflict, session_exists"},
        "session_id": {"type": "string"},
        "max_bytes": {"type": "integer", "description": "payload_too_large"},
        "wanted_version": {"type": "integer", "description": "projection_behind"},
        "wanted_position": {"type": "integer", "description": "projection_behind"},
        "retry_after_s": {"type": "integer", "minimum": 1, "description": "rate_limited"},
        "limit_per_s": {"type": "number", "description": "rate_limited"},
        "burst": {"type": "integer", "description": "rate_limited"},
    },
}

_HEADER = {"schema": {"type": "string"}}
REQUEST_ID_HEADER: dict[str, Any] = {
    "description": "the request's id: the caller's X-Request-Id if it was a valid id, else a new one",
    "required": True,
    **_HEADER,
}
RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "seconds to wait before retrying",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}

# What each error status means in both APIs, and the codes it carries (agentlog.edge.problems,
# eventstore.errors). A status whose answer always says when to retry has a required Retry-After.
_STATUSES: dict[int, tuple[str, bool]] = {
    400: ("malformed_json: the body is not JSON", False),
    401: ("unauthenticated: no API key, or an unknown, revoked or malformed one", False),
    403: ("forbidden: the key's role is below the operation's", False),
    404: ("session_not_found (also for another tenant's session) or approval_not_found", False),
    409: (
        "version_conflict or session_exists (with current_version), idempotency_key_taken (with Retry-After), "
        "or a rule the session's state forbids: session_already_started, session_closed, tool_call_not_open, "
        "tool_call_id_in_use, approval_already_decided, approval_expired, section_owned_by_other_agent",
        False,
    ),
    413: ("payload_too_large: the body is over the limit (max_bytes)", False),
    415: ("unsupported_media_type: the body is declared as something other than JSON", False),
    422: (
        "invalid_input with `errors` [{field, reason}], idempotency_key_reused, or a value the stores cannot "
        "keep (state_too_large and the like)",
        False,
    ),
    429: ("rate_limited: the API key is over its tenant's request rate (retry_after_s, Retry-After)", True),
    500: ("internal_error: an unexpected failure; the answer reveals nothing of it", False),
    503: (
        "overloaded: the process serves its maximum of requests at once; infrastructure_unavailable: the "
        "database is unreachable or no connection came in time; schema_behind (readiness)",
        True,
    ),
    504: ("projection_behind: the read model did not reach the wanted version in time", True),
}

# Every operation that takes an API key can answer these (auth, the per-key rate, overload).
AUTHENTICATED = (401, 429, 503)


def operation_id(route: APIRoute) -> str:
    """`generate_unique_id_function=` of every router: the operationId is the route function's name
    (`add_message`, not FastAPI's `add_message_v1_sessions__session_id__messages_post`), the name
    generated clients give the method and links refer to."""
    return route.name


def problem(status: int) -> dict[str, Any]:
    """The OpenAPI response object of an error answer with `status`."""
    description, retry_after = _STATUSES[status]
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": _SCHEMAS + "Problem"}}},
    }
    if retry_after:
        response["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
    return response


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route or router: the error statuses it can answer, each as a problem."""
    return {status: problem(status) for status in sorted(set(statuses))}


def success(status: int, model: Any, description: str, headers: dict[str, Any] | None = None) -> dict[int | str, Any]:
    """`responses=` entry of a success answer: its JSON body is `model`'s schema (documentation only)."""
    response: dict[str, Any] = {"model": model, "description": description}
    if headers:
        response["headers"] = headers
    return {status: response}


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """Add what holds for every operation to a document FastAPI generated (in place; returned)."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["FieldError"] = FIELD_ERROR_SCHEMA
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "an agentlog API key (`agentlog keys create`): `Authorization: Bearer al_<key_id>_<secret>`",
    }
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            _finish_operation(operation)
    _link_sessions(document)
    return document


def _link_sessions(document: dict[str, Any]) -> None:
    """An answer that names a session (`session_id`, or `items[].session_id` of a page) from an
    operation that does not take one in its path (a start, a list) links to every operation that
    does, so a client or a stateful tester knows where the id goes (OpenAPI links)."""
    schemas = document.get("components", {}).get("schemas", {})
    operations = [op for item in document.get("paths", {}).values() for op in item.values()]
    takers = [op["operationId"] for op in operations if _takes_session(op) and "operationId" in op]
    for operation in operations:
        if _takes_session(operation):
            continue
        for status, response in operation.get("responses", {}).items():
            if not status.startswith("2"):
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            pointer = _session_pointer(schema, schemas)
            if pointer is None:
                continue
            links = response.setdefault("links", {})
            for target in takers:
                links.setdefault(
                    target,
                    {"operationId": target, "parameters": {"session_id": f"$response.body#{pointer}"}},
                )


def _takes_session(operation: dict[str, Any]) -> bool:
    return any(p.get("in") == "path" and p.get("name") == "session_id" for p in operation.get("parameters", []))


def _session_pointer(schema: dict[str, Any], schemas: dict[str, Any]) -> str | None:
    properties = _resolve(schema, schemas).get("properties", {})
    if "session_id" in properties:
        return "/session_id"
    items = _resolve(properties.get("items", {}), schemas).get("items", {})
    if "session_id" in _resolve(items, schemas).get("properties", {}):
        return "/items/0/session_id"
    return None


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    return schemas.get(ref.removeprefix(_SCHEMAS), {}) if ref.startswith(_SCHEMAS) else schema


def _finish_operation(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        parameter["schema"] = _without_null(parameter.get("schema", {}))
    responses = operation.setdefault("responses", {})
    validation = responses.get("422", {}).get("content", {}).get("application/json", {})
    if validation.get("schema", {}).get("$ref") == _SCHEMAS + "HTTPValidationError":
        responses["422"] = problem(422)  # FastAPI's default for a route that declared none
    responses.setdefault("500", problem(500))
    for response in responses.values():
        response.setdefault("headers", {})["X-Request-Id"] = REQUEST_ID_HEADER
    if "401" in responses:
        operation["security"] = [{SECURITY_SCHEME: []}]


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without FastAPI's `null` branch of an optional parameter: a path, query
    or header parameter is absent or a string, it cannot be sent as null."""
    branches = schema.get("anyOf")
    if not branches or {"type": "null"} not in branches:
        return schema
    kept = [branch for branch in branches if branch != {"type": "null"}]
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}


def install(app: FastAPI) -> None:
    """Make `app.openapi()` (and /openapi.json) serve the finished document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
