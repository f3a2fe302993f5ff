"""The one process main of the four long-running components (command API, query API, relay,
projector): logging, SIGINT/SIGTERM, the event loop, the start-up wait for PostgreSQL, running
the component, and the exit code.

Every component runs on uvloop where it is installed (a dependency except on Windows): uvicorn
picks it only when it creates the loop itself, and here the loop is ours, so the APIs get it from
here too, as the relay and the projector do.

Invariant: a requested stop (SIGINT or SIGTERM) ends the process with 0, also while it waits for
PostgreSQL; a component that refuses to run (unsafe topic, schema behind, PostgreSQL unreachable
for AGENTLOG_DATABASE_STARTUP_WAIT_S or refusing our login: an AgentlogError) ends it with 2 and
one CRITICAL line, no traceback. A component starts only once PostgreSQL accepted a connection, so
each component's own start-up code needs no retry of its own. Settings are built by the caller
(the CLI entry point) and passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from agentlog.stack.background import backend_to_background, run_in_background
from eventstore import db
from eventstore.errors import AgentlogError
from eventstore.large_reads import prepare_heap_for_serving
from eventstore.settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REFUSED = 2


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    # aiokafka reports every refused connection while a broker starts; our own probes say what matters.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL if level.upper() == "WARNING" else logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


Component = Callable[[asyncio.Event], Awaitable[None]]


async def _until_signalled(component: Component, database: Settings | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if database is not None and not await db.wait_until_reachable(
        database.dsn(), database.database_startup_wait_s, stop
    ):
        return  # stopped while waiting for PostgreSQL
    prepare_heap_for_serving()  # a process main: what is alive now lives as long as the process
    await component(stop)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed, else None (asyncio's default loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


AUTOGROUP = Path("/proc/self/autogroup")  # the scheduling group of this process's session (sched(7))


def lower_priority(niceness: int) -> None:
    """Run this process at `niceness` or below (Linux nice 0..19; one already nicer stays as it
    is). The relay and the projector are background work with batching windows to absorb delays:
    when they share cores with the command API (`agentlog dev`, one small machine), the command API
    should not wait for them. No-op where the OS has no such priority.

    Where the kernel groups processes by session for scheduling (autogroup, on in most desktop and
    many cloud kernels), a process's nice only weighs it against its own session's processes; a
    session leader (`agentlog dev` starts each component as one) is alone in its group, so the
    group's nice is set too (/proc/self/autogroup)."""
    if not hasattr(os, "getpriority"):
        return
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > current:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    if niceness > 0 and os.getsid(0) == os.getpid():
        with contextlib.suppress(OSError, ValueError, IndexError):  # a kernel without autogroup
            # "/autogroup-123 nice 0"
            if niceness > int(AUTOGROUP.read_text().split()[-1]):
                AUTOGROUP.write_text(f"{niceness}\n")


def run_on_idle_cpu(name: str) -> None:
    """This process, and the PostgreSQL backends of its connections to come, in the idle CPU group."""
    group = run_in_background()
    if group is None:
        logging.getLogger("agentlog").debug("%s runs at its nice: no idle CPU group here", name)
        return
    if backend_to_background not in db.CONNECTION_HOOKS:
        db.CONNECTION_HOOKS.append(backend_to_background)
    logging.getLogger("agentlog").info("%s runs on idle CPU time (%s)", name, group)


def run_component(
    name: str, component: Component, *, database: Settings | None = None, niceness: int = 0, background: bool = False
) -> int:
    """Run `component(stop)` until SIGINT/SIGTERM sets `stop`; returns the process exit code.

    With `database`, the component starts only once its PostgreSQL accepts connections; with
    `niceness`, at that CPU priority (`lower_priority`); with `background`, on idle CPU time where
    the machine allows it, its PostgreSQL backends too (agentlog/stack/background.py)."""
    lower_priority(niceness)
    if background:
        run_on_idle_cpu(name)
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(_until_signalled(component, database))
    except AgentlogError as exc:
        logging.getLogger("agentlog").critical("%s refuses to run: %s", name, exc)
        return REFUSED
    return 0


def wait_for_database(name: str, database: Settings) -> int | None:
    """The start-up wait alone, for a component that runs outside `run_component` (uvicorn's
    worker supervisor): None once PostgreSQL is reachable, else the exit code to end with."""
    reached = False

    async def reach(stop: asyncio.Event) -> None:
        nonlocal reached
        reached = True

    code = run_component(name, reach, database=database)
    return None if reached else code


def uvicorn_component(server_config) -> Component:
    """An HTTP API as a component: uvicorn serves until `stop` is set, then shuts down gracefully.
    Our handlers replace uvicorn's own, so a SIGTERM ends the process with 0 instead of -15."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # Keep our SIGINT/SIGTERM handlers: uvicorn would install its own and re-raise the signal.
            yield

    async def serve(stop: asyncio.Event) -> None:
        server = Server(server_config)
        task = asyncio.create_task(server.serve())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        stopped.cancel()
        await task

    return serve
