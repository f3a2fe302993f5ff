"""`python -m projections`: one projector process (what `agentlog project` runs), stopped by
SIGTERM or SIGINT; settings from the environment (AGENTLOG_*, AGENTLOG_PROJECTOR_*)."""

from __future__ import annotations

import asyncio
import logging
import signal

from eventstore.settings import Settings
from projections.projector.runner import run_projector
from projections.settings import ProjectorSettings


async def _main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_projector(Settings(), ProjectorSettings(), stop)


if __name__ == "__main__":
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_main())
