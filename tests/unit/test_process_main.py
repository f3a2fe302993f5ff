"""The process main runs every long-running component (relay, projector, both APIs) on uvloop,
with the heap it started with kept out of the garbage collector's full collections."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from agentlog.cli.process import REFUSED, run_component
from eventstore.errors import AgentlogError


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    # run_component freezes the heap of the process it runs in; this one goes on running tests.
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


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


def test_component_starts_with_its_startup_heap_frozen_and_young_collections_rarer() -> None:
    class Built:  # stands for the app, its routes and schemas: made before the component runs
        pass

    built = Built()
    seen: dict[str, int] = {}

    async def component(stop: asyncio.Event) -> None:
        seen["frozen"] = gc.get_freeze_count()
        seen["young_threshold"] = gc.get_threshold()[0]
        seen["tracked_before"] = sum(1 for o in gc.get_objects() if o is built)
        made = Built()
        seen["young_tracked"] = sum(1 for o in gc.get_objects() if o is made)

    assert run_component("test component", component) == 0
    assert seen["frozen"] > 1000  # the interpreter, pytest and our modules
    assert seen["tracked_before"] == 0, "what was built before serving is out of the collector's reach"
    assert seen["young_tracked"] == 1, "what the component makes is collected as usual"
    assert seen["young_threshold"] == 20_000, "young collections wait for 20,000 net allocations"
