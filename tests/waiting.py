"""Waiting on a condition with a deadline: the only way tests synchronise with background work."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def wait_until(
    condition: Callable[[], Any | Awaitable[Any]],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition",
) -> Any:
    """Poll `condition` (sync or async) until it returns a truthy value; return that value.

    Raises AssertionError naming `message` and the last value seen when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = condition()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}; last value: {last!r}")
        await asyncio.sleep(interval)


def wait_until_sync(condition: Callable[[], Any], *, timeout: float = 10.0, message: str = "condition") -> Any:
    """`wait_until` for a test that runs threads rather than an event loop: poll `condition` until
    truthy, failing at the deadline with `message`."""
    deadline = time.monotonic() + timeout
    while not (last := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}; last value: {last!r}")
        time.sleep(0.001)
    return last
