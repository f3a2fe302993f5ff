"""The process main runs every long-running component (relay, projector, both APIs) on uvloop."""

from __future__ import annotations

import asyncio

from agentlog.cli.process import REFUSED, run_component
from eventstore.errors import AgentlogError


def test_component_runs_on_uvloop_and_exits_0() -> None:
    loops: list[str] = []

    async def component(stop: asyncio.Event) -> None:
        loops.append(type(asyncio.get_running_loop()).__module__)

    assert run_component("test component", component) == 0
    assert loops and loops[0].startswith("uvloop")


def test_component_that_refuses_to_run_exits_2() -> None:
    async def component(stop: asyncio.Event) -> None:
        raise AgentlogError("schema behind")

    assert run_component("test component", component) == REFUSED
