"""Operations written once for both clients: a generator that yields the client Calls it needs,
in order, and returns its result; `run` drives it with the sync client, `arun` with the async one.

    def get_thing(name) -> Steps[Thing | None]:
        try:
            found = yield queries.get_session(name)
        except NotFoundError:
            return None
        return Thing(found)

Invariant: a step receives the answer of the call it yielded, or that call's error thrown back
into it (so it may handle a NotFoundError or a conflict where it yielded); nothing else runs
between a yield and its answer. The client's retries and read-your-writes apply to every call.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

from agentlog.client import AgentlogClient, AgentlogError, AsyncAgentlogClient
from agentlog.client.calls import Call

T = TypeVar("T")
Steps = Generator[Call[Any], Any, T]


def run(client: AgentlogClient, steps: Steps[T]) -> T:
    """Run `steps` with the blocking client."""
    try:
        call = next(steps)
        while True:
            try:
                answer = client.send(call)
            except AgentlogError as exc:
                call = steps.throw(exc)
            else:
                call = steps.send(answer)
    except StopIteration as done:
        return done.value


async def arun(client: AsyncAgentlogClient, steps: Steps[T]) -> T:
    """Run `steps` with the async client."""
    try:
        call = next(steps)
        while True:
            try:
                answer = await client.send(call)
            except AgentlogError as exc:
                call = steps.throw(exc)
            else:
                call = steps.send(answer)
    except StopIteration as done:
        return done.value
