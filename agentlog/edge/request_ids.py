"""Request ids and correlation ids at the edge.

Invariant: every answer of either API, errors included, carries `X-Request-Id`: the caller's if it
sent a valid id, else a fresh one; the id is in `scope["state"]["request_id"]` for handlers.
Correlation and causation ids, when sent, must be ids (letters, digits and ._:@-) or the request
is 422 naming the header.
"""

from __future__ import annotations

import uuid

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventstore.errors import ValidationProblemError
from eventstore.ids import is_valid_id

REQUEST_ID = "x-request-id"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).get(REQUEST_ID)
        # an invalid id is replaced, not refused: it only labels logs, it decides nothing
        request_id = sent if sent is not None and is_valid_id(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def _invalid_header(name: str, reason: str) -> ValidationProblemError:
    return ValidationProblemError(
        f"the {name} header is not valid", errors=[{"field": f"header.{name}", "reason": reason}]
    )


def correlation_ids(headers) -> tuple[str, str | None]:
    """(correlation id, causation id) from X-Correlation-Id / X-Causation-Id; a missing
    correlation id is a fresh one (each request starts its own chain)."""
    correlation = headers.get("x-correlation-id")
    if correlation is not None and not is_valid_id(correlation):
        raise _invalid_header("X-Correlation-Id", "must be an id: letters, digits and ._:@-")
    causation = headers.get("x-causation-id")
    if causation is not None and not is_valid_id(causation):
        raise _invalid_header("X-Causation-Id", "must be an id: letters, digits and ._:@-")
    return correlation or uuid.uuid4().hex, causation
