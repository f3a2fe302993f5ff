"""What one database round trip costs on this machine: CPU of the client and of its backends per
`SELECT`, one at a time (the caller sleeps until each answer: what an open loop's command does)
against four in flight (answers waiting when the caller looks: what a closed loop's does), over
TCP and, when the server is local, over its Unix socket.

Why: in bench_system's open loop a command costs the command API more CPU than in the closed
loop at capacity, and the difference is per sleep, not per line of code. This prints that cost on
its own, with no HTTP and no application: the ratio one-at-a-time / four-in-flight is what a
wake-up adds to a round trip here (on the 2-core VM of docs/benchmarks.md, about 2.2x).

Each figure is the median of `--rounds` interleaved runs of `--queries` queries; the pool holds
four connections throughout, so their backends are the same processes in every run. Run from the
project root: `python -m bench.bench_round_trip` (AGENTLOG_DATABASE_URL or the local stack; about
20 s; nothing is created).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg
import uvloop

from bench.process_cpu import cpu_seconds
from eventstore.settings import Settings

CONNECTIONS = 4
QUERY = "SELECT $1::int + 1"


async def unix_socket(dsn: str) -> tuple[str, int] | None:
    """The server's Unix socket (directory, port) when it runs on this machine and the socket is there."""
    host = urlsplit(dsn).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    conn = await asyncpg.connect(dsn)
    try:
        directories = await conn.fetchval("SHOW unix_socket_directories")
        port = await conn.fetchval("SHOW port")
    finally:
        await conn.close()
    for directory in (d.strip() for d in directories.split(",") if d.strip()):
        if os.path.exists(os.path.join(directory, f".s.PGSQL.{port}")):
            return directory, int(port)
    return None


async def measure(pool: asyncpg.Pool, backends: list[int], queries: int, in_flight: int) -> tuple[float, float, float]:
    """(client CPU us, backends' CPU us, wall us) per query, `in_flight` callers at once."""

    async def caller(n: int) -> None:
        for _ in range(n):
            await pool.fetchval(QUERY, 1)

    server_before = sum(cpu_seconds(pid) or 0.0 for pid in backends)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(queries // in_flight) for _ in range(in_flight)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    server = sum(cpu_seconds(pid) or 0.0 for pid in backends) - server_before
    done = queries // in_flight * in_flight
    return cpu * 1e6 / done, server * 1e6 / done, wall * 1e6 / done


async def open_pool(connect: Callable[[], Awaitable[asyncpg.Pool]]) -> tuple[asyncpg.Pool, list[int]]:
    pool = await connect()
    held = [await pool.acquire() for _ in range(CONNECTIONS)]
    backends = [conn.get_server_pid() for conn in held]
    for conn in held:
        await pool.release(conn)
    return pool, backends


async def run(args: argparse.Namespace) -> dict[tuple[str, int], list[tuple[float, float, float]]]:
    dsn = Settings().dsn()
    kinds: dict[str, Callable[[], Awaitable[asyncpg.Pool]]] = {
        "TCP": lambda: asyncpg.create_pool(dsn, min_size=CONNECTIONS, max_size=CONNECTIONS)
    }
    socket = await unix_socket(dsn)
    if socket is not None:
        kinds["Unix socket"] = lambda: asyncpg.create_pool(
            dsn, host=socket[0], port=socket[1], min_size=CONNECTIONS, max_size=CONNECTIONS
        )
    pools = {name: await open_pool(connect) for name, connect in kinds.items()}
    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    try:
        for pool, backends in pools.values():
            await measure(pool, backends, 500, CONNECTIONS)  # warm-up: plans, caches
        for _ in range(args.rounds):
            for in_flight in (1, CONNECTIONS):
                for name, (pool, backends) in pools.items():
                    results.setdefault((name, in_flight), []).append(
                        await measure(pool, backends, args.queries, in_flight)
                    )
    finally:
        for pool, _ in pools.values():
            await pool.close()
    return results


def report(results: dict[tuple[str, int], list[tuple[float, float, float]]]) -> None:
    medians = {key: tuple(statistics.median(r[i] for r in runs) for i in range(3)) for key, runs in results.items()}
    print("per round trip (medians)          client CPU   its backend's CPU   wall")
    for (name, in_flight), (client, server, wall) in medians.items():
        print(f"  {name:12s} {in_flight} in flight      : {client:7.1f} us   {server:10.1f} us   {wall:7.1f} us")
    for name in dict.fromkeys(name for name, _ in medians):
        alone, together = medians[(name, 1)], medians[(name, CONNECTIONS)]
        print(
            f"{name}: one at a time / {CONNECTIONS} in flight = {alone[0] / together[0]:.2f} (client), "
            f"{alone[1] / together[1]:.2f} (backend): what waiting for each answer adds to a round trip"
        )
    if ("Unix socket", 1) in medians:
        for in_flight in (1, CONNECTIONS):
            tcp, unix = medians[("TCP", in_flight)], medians[("Unix socket", in_flight)]
            print(
                f"Unix socket / TCP, {in_flight} in flight: {unix[0] / tcp[0]:.2f} (client), "
                f"{unix[1] / tcp[1]:.2f} (backend)"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=8000, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the medians are printed")
    args = parser.parse_args(argv)
    report(uvloop.run(run(args)))


if __name__ == "__main__":
    main()
