"""Support for the client's unit tests (no tests here): either client over an httpx.MockTransport,
with a fake clock that only the fake sleep moves, so retry timing is exact and nothing sleeps.

`Harness(kind, handler)` runs a method of the sync client directly, or of the async client to
completion on a fresh event loop, and collects iterators, so one test body covers both clients.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from agentlog.client import AgentlogClient, AsyncAgentlogClient

KINDS = ("sync", "async")


def write_answer(session_id: str = "s-1", version: int = 1, position: int = 10, **headers: str) -> httpx.Response:
    body = {"session_id": session_id, "version": version, "position": position, "event_ids": ["e-1"]}
    return httpx.Response(200, json=body, headers=headers)


def problem(status: int, code: str, headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    """An error answer as the APIs give it (agentlog/edge/problems.py)."""
    body = {"type": f"https://agentlog.dev/problems/{code}", "status": status, "code": code, "detail": code, **extra}
    return httpx.Response(
        status, content=json.dumps(body), headers={"content-type": "application/problem+json", **(headers or {})}
    )


class Harness:
    def __init__(self, kind: str, handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> None:
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.now = 0.0

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            self.now += seconds

        async def async_sleep(seconds: float) -> None:
            sleep(seconds)

        common: dict[str, Any] = {"clock": lambda: self.now, "jitter": lambda: 0.5, **options}
        transport = httpx.MockTransport(record)
        self.client: AgentlogClient | AsyncAgentlogClient
        if kind == "sync":
            self.client = AgentlogClient("test-key", transport=transport, sleep=sleep, **common)
        else:
            self.client = AsyncAgentlogClient("test-key", transport=transport, sleep=async_sleep, **common)

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, method)(*args, **kwargs)
        if inspect.iscoroutine(result):
            return asyncio.run(result)
        if isinstance(result, AsyncIterator):
            return asyncio.run(_collect(result))
        if isinstance(result, Iterator):
            return list(result)
        return result

    def keys(self) -> list[str | None]:
        return [r.headers.get("idempotency-key") for r in self.requests]


async def _collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param
