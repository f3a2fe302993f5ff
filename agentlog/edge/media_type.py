"""Bodies must be JSON: a request that declares another media type is refused with 415 before any
parsing, instead of surfacing as a puzzling validation error (curl's -d, for one, sends
application/x-www-form-urlencoded unless told otherwise).

Invariant: a body without Content-Type is still parsed as JSON (lenient clients); a declared
application/json, application/merge-patch+json or any +json type passes; anything else is 415.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from agentlog.edge.errors import UnsupportedMediaTypeError
from agentlog.edge.problems import problem_response

JSON_TYPES = ("application/json", "application/merge-patch+json")


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in JSON_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))


class JsonMediaTypeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            declared = dict(scope["headers"]).get(b"content-type")
            if declared is None:
                # FastAPI parses a body as JSON only when it is declared so; lenient clients omit it.
                scope = {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}
            elif not is_json_media_type(declared.decode("latin-1")):
                error = UnsupportedMediaTypeError(
                    f"the body must be JSON (Content-Type: application/json), not {declared.decode('latin-1')!r}",
                    errors=[{"field": "header.Content-Type", "reason": "must be application/json"}],
                )
                await problem_response(error.status, error.problem())(scope, receive, send)
                return
        await self.app(scope, receive, send)
