"""`python -m outbox`: one relay process (what `agentlog relay` runs), stopped by SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

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
    await run_relay(settings, relay_settings, stop)


if __name__ == "__main__":
    asyncio.run(main())
