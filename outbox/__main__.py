"""`python -m outbox`: one relay process (what `agentlog relay` runs), stopped by SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from eventstore.errors import AgentlogError
from eventstore.settings import Settings
from outbox.relay import run_relay
from outbox.settings import RelaySettings


async def main() -> None:
    settings, relay_settings = Settings(), RelaySettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_relay(settings, relay_settings, stop)
    except AgentlogError as exc:  # unsafe topic, schema behind: refuse, loudly, without a traceback
        logging.getLogger("outbox").critical("relay refuses to run: %s", exc)
        sys.exit(2)


if __name__ == "__main__":
    asyncio.run(main())
