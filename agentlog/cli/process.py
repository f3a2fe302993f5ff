"""The one process main of the four long-running components (command API, query API, relay,
projector): logging, SIGINT/SIGTERM, running the component, and the exit code.

Invariant: a requested stop (SIGINT or SIGTERM) ends the process with 0; a component that refuses
to run (unsafe topic, schema behind: an AgentlogError) ends it with 2 and one CRITICAL line, no
traceback. Settings are built by the caller (the CLI entry point) and passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator

from eventstore.errors import AgentlogError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REFUSED = 2


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    # aiokafka reports every refused connection while a broker starts; our own probes say what matters.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL if level.upper() == "WARNING" else logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


async def _until_signalled(component: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await component(stop)


def run_component(name: str, component: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run `component(stop)` until SIGINT/SIGTERM sets `stop`; returns the process exit code."""
    try:
        asyncio.run(_until_signalled(component))
    except AgentlogError as exc:
        logging.getLogger("agentlog").critical("%s refuses to run: %s", name, exc)
        return REFUSED
    return 0


def uvicorn_component(server_config) -> Callable[[asyncio.Event], Awaitable[None]]:
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
