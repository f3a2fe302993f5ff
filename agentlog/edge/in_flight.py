"""A bound on the requests one API process serves at once: past it, 503 at once, not a queue.

Invariant: at most `max_in_flight` requests (ops routes aside) are inside the app at any moment;
one more is answered immediately with 503 problem+json `overloaded` and Retry-After, before its
body is read, so a saturated process sheds load in microseconds instead of letting every client
wait until it times out. The ops routes (/healthz, /readyz, /metrics) are never refused: a load
balancer and Prometheus must see a busy process as alive. 0 means no bound.

The count is a plain int: the middleware runs on the event loop, and nothing between the check and
the increment awaits. With N server processes the bound is per process.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from agentlog.edge.errors import OverloadedError
from agentlog.edge.problems import RETRY_AFTER_S, problem_response

_NO_BODY = ("GET", "HEAD", "OPTIONS", "DELETE")


class InFlightLimitMiddleware:
    def __init__(self, app: ASGIApp, max_in_flight: int, exempt_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.exempt_paths = frozenset(exempt_paths)
        self.in_flight = 0
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.max_in_flight or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.refused += 1
            await self._refuse(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = OverloadedError(
            f"this API process is serving its maximum of {self.max_in_flight} requests at once; retry shortly",
            max_in_flight=self.max_in_flight,
        )
        headers = {"Retry-After": RETRY_AFTER_S}
        if scope["method"] not in _NO_BODY:
            # the body is left unread: the connection cannot carry another request after it
            headers["Connection"] = "close"
        await problem_response(error.status, error.problem(), headers)(scope, receive, send)
