"""Request body size limit, enforced before anything parses the body.

Invariant: no handler ever sees more than `max_bytes` of body: a declared Content-Length above
the limit is refused without reading, and a streamed body is read only up to the limit, then
refused (413 problem+json).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentlog.edge.errors import PayloadTooLargeError
from agentlog.edge.problems import problem_response


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLargeError(f"the body is larger than {self.max_bytes} bytes", max_bytes=self.max_bytes)
        await problem_response(error.status, error.problem(), headers={"Connection": "close"})(scope, receive, send)


def _replay(body: bytes, downstream: Receive) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await downstream()  # after the body: wait for the client to disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
