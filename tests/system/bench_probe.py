"""A stand-in benchmark for tests/system/test_bench_runner.py: what a benchmark needs from the
stack `python -m bench` brings up (its PostgreSQL answering), in a process of its own."""

from __future__ import annotations

import asyncio

import asyncpg

from agentlog.stack.stack import Stack


async def _probe() -> None:
    conn = await asyncpg.connect(Stack.from_settings().database_url())
    try:
        port = await conn.fetchval("SHOW port")
    finally:
        await conn.close()
    print(f"probe: postgres answered on port {port}", flush=True)


if __name__ == "__main__":
    asyncio.run(_probe())
