"""Append and command API throughput against the raw limit of the same rows, measured in one run.

Phases (each bounded, BENCH_PHASE_S seconds, default 5):
  raw     16 writers insert the rows of one append (events + outbox + streams upsert) with one
          plain SQL statement per event, no checks: the limit the store is compared with.
  store   16 writers call EventStore.append, 1 event per transaction, distinct sessions; then the
          same through the group commit the command API uses (eventstore/group_commit.py).
  http    (each load preceded by a raw phase: its ratio is against that adjacent raw figure)
          16 concurrent connections POST /messages to a command API in a uvicorn subprocess
          (bench/http_load.py): wrk (C) against 1 and 2 server processes, then GET /healthz
          (the HTTP stack's own ceiling); then the httpx fallback (Python client, 1 process).
          Without wrk (`apt-get install -y wrk`) only the httpx figures are printed.
  long    one command on a session of 10,000 events vs one on a new session (CommandHandler).
Run: `python -m bench.bench_append` (DSN: AGENTLOG_DATABASE_URL or the default); it creates and
drops a database of its own.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass

import asyncpg

from agentlog.edge.keys import create_key
from bench import http_load
from bench.http_load import LoadResult
from bench.scratch import scratch_database
from commands import models as cmd
from commands.handler import CommandHandler, CommandRequest
from eventstore import db
from eventstore.events import MessageAdded, SessionStarted
from eventstore.outbox_wake import DEFERRED
from eventstore.registry import to_stored
from eventstore.settings import Settings
from eventstore.state import SessionState, fold
from eventstore.store import ANY, EventStore, group_commit

WRITERS = 16
RING = 256  # sessions wrk cycles through: concurrent requests never share one
PHASE_S = float(os.environ.get("BENCH_PHASE_S", "5"))
LONG_EVENTS = 10_000
EVENT = ("MessageAdded", 2, {"role": "assistant", "content": "x" * 200, "agent": "bench"})
STATE = fold([SessionStarted(workflow="bench", agents=["bench"])], SessionState.new("s", "bench")).to_snapshot()
RAW_SQL = """
WITH e AS (
    INSERT INTO events (tenant, session_id, version, event_id, type, schema_version, data)
    VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING position
), o AS (
    INSERT INTO outbox (position, tenant, session_id) SELECT position, $1, $2 FROM e
    RETURNING position
)
INSERT INTO streams (tenant, session_id, version, status, state, last_position)
SELECT $1, $2, $3, 'open', $8, position FROM o
ON CONFLICT (tenant, session_id)
DO UPDATE SET version = excluded.version, state = excluded.state,
              last_position = excluded.last_position, updated_at = now()
"""


async def _timed_writers(work) -> tuple[float, list[float]]:
    """Run `work(writer, n)` in WRITERS loops for PHASE_S seconds: (events/s, latencies)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + PHASE_S

    async def loop(writer: int) -> int:
        n = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await work(writer, n)
            latencies.append(time.perf_counter() - started)
            n += 1
        return n

    started = time.perf_counter()
    done = await asyncio.gather(*(loop(w) for w in range(WRITERS)))
    return sum(done) / (time.perf_counter() - started), latencies


async def raw_phase(pool: asyncpg.Pool) -> float:
    run = uuid.uuid4().hex[:6]

    async def work(writer: int, n: int) -> None:
        await pool.execute(RAW_SQL, "bench", f"raw-{run}-{writer}", n + 1, uuid.uuid4(), *EVENT, STATE)

    rate, _ = await _timed_writers(work)
    return rate


async def store_phase(store: EventStore) -> float:
    run = uuid.uuid4().hex[:6]

    async def work(writer: int, n: int) -> None:
        await store.append(
            "bench", f"store-{run}-{writer}", [EVENT], expected_version=n, new_state=STATE, metadata={"actor": "bench"}
        )

    rate, _ = await _timed_writers(work)
    return rate


@dataclass
class HttpFigures:
    """Each load result with the raw limit measured just before it (other processes share the
    2 cores, so a raw figure from a minute earlier may describe a different machine)."""

    wrk_1: tuple[LoadResult, float] | None = None  # wrk, one server process
    wrk_2: tuple[LoadResult, float] | None = None  # wrk, two server processes (one per core)
    wrk_ceiling: float | None = None  # wrk GET /healthz, one server process
    httpx_1: tuple[LoadResult, float] | None = None  # httpx fallback, one server process
    httpx_ceiling: float | None = None


async def http_phase(dsn: str, pool: asyncpg.Pool) -> HttpFigures:
    """The command API in a subprocess under wrk (1 and 2 server processes) and under httpx."""
    key = await create_key(pool, "bench", "writer")
    figures = HttpFigures()
    if http_load.wrk_path() is None:
        print(http_load.WRK_MISSING, file=sys.stderr)
    for workers in (1, 2) if http_load.wrk_path() else ():
        async with http_load.ApiServer(dsn, workers=workers) as server:
            prefix = f"wrk{workers}-{uuid.uuid4().hex[:6]}"
            await http_load.start_sessions(server.url, key, [f"{prefix}-{i}" for i in range(RING)])
            raw = await raw_phase(pool)
            result = await http_load.wrk_messages(server.url, key, prefix, RING, connections=WRITERS, seconds=PHASE_S)
            if workers == 1:
                figures.wrk_1 = result, raw
                figures.wrk_ceiling = await http_load.wrk_get(
                    f"{server.url}/healthz", connections=WRITERS, seconds=PHASE_S
                )
            else:
                figures.wrk_2 = result, raw
    async with http_load.ApiServer(dsn, workers=1) as server:
        ids = [f"httpx-{uuid.uuid4().hex[:6]}-{w}" for w in range(WRITERS)]
        await http_load.start_sessions(server.url, key, ids)
        raw = await raw_phase(pool)
        result, figures.httpx_ceiling = await http_load.httpx_messages(
            server.url, key, ids, seconds=PHASE_S, timed_writers=_timed_writers
        )
        figures.httpx_1 = result, raw
    return figures


async def long_session_phase(store: EventStore) -> tuple[float, float]:
    """Mean seconds per command on a session of LONG_EVENTS events, and on a new session."""
    handler = CommandHandler(store)
    run = uuid.uuid4().hex[:6]
    long_id = f"long-{run}"
    state = SessionState.new(long_id, "bench")
    start = SessionStarted(workflow="bench")
    state = fold([start], state)
    await store.append("bench", long_id, [to_stored(start)], expected_version=0, new_state=state.to_snapshot())
    message = MessageAdded(role="assistant", content="x" * 200, agent="bench")
    while state.version < LONG_EVENTS:
        batch = [message] * min(1000, LONG_EVENTS - state.version)
        state = fold(batch, state)
        await store.append(
            "bench", long_id, [to_stored(e) for e in batch], expected_version=ANY, new_state=state.to_snapshot()
        )
    command = [cmd.AddMessage(role="user", content="hello")]

    async def mean_latency(session_of) -> float:
        latencies, deadline, i = [], time.perf_counter() + PHASE_S / 2, 0
        while time.perf_counter() < deadline:
            sid = session_of(i)
            if sid != long_id:
                await handler.handle(CommandRequest("bench", sid, [cmd.StartSession()]))
            started = time.perf_counter()
            await handler.handle(CommandRequest("bench", sid, command))
            latencies.append(time.perf_counter() - started)
            i += 1
        return statistics.mean(latencies)

    await mean_latency(lambda i: long_id)  # warm up caches and prepared statements
    return await mean_latency(lambda i: long_id), await mean_latency(lambda i: f"new-{run}-{i}")


async def main() -> None:
    async with scratch_database(Settings().dsn()) as dsn:
        # Deferred NOTIFY, as the command API's connections (migration 0013): the raw limit pays no
        # notification-queue lock at commit, which the system no longer pays either.
        pool = await db.create_pool(dsn, min_size=WRITERS, max_size=WRITERS, server_settings=DEFERRED)
        try:
            await _report(dsn, pool)
        finally:
            await pool.close()


async def _report(dsn: str, pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    await raw_phase(pool)  # warm-up: connections, plans, WAL
    raw = await raw_phase(pool)
    appended = await store_phase(store)
    grouped = await store_phase(EventStore(pool, batcher=group_commit(pool)))
    http = await http_phase(dsn, pool)
    raw_after = await raw_phase(pool)
    # The same rows from sessions that NOTIFY in their transactions (every writer before migration
    # 0013, and `agentlog import` now): what the notification-queue lock costs, in the same run.
    notifying = await db.create_pool(dsn, min_size=WRITERS, max_size=WRITERS)
    try:
        raw_notifying = await raw_phase(notifying)
    finally:
        await notifying.close()
    long_s, new_s = await long_session_phase(store)
    print(
        f"cores: {os.cpu_count()}  writers/connections: {WRITERS}  phase: {PHASE_S:.0f} s  "
        f"server: {http_load.server_stack()}"
    )
    print(f"raw limit (plain SQL)       : {raw:7.0f} events/s (again after http: {raw_after:.0f})")
    print(
        f"raw, NOTIFY in each commit  : {raw_notifying:7.0f} events/s   ratio {raw_notifying / raw_after:.2f} "
        "(the limit before migration 0013)"
    )
    print(f"EventStore.append           : {appended:7.0f} events/s   ratio {appended / raw:.2f}  (goal >= 0.5)")
    print(
        f"  with group commit         : {grouped:7.0f} events/s   ratio {grouped / raw:.2f}  (the command API's "
        "path: appends that wait for a lane go several to a transaction)"
    )
    rows = [
        ("command API, wrk, 1 process", http.wrk_1),
        ("command API, wrk, 2 processes", http.wrk_2),
        ("command API, httpx, 1 proc.", http.httpx_1),
    ]
    for label, measured in rows:
        if measured is not None:
            result, raw_then = measured
            print(
                f"{label:28s}: {result.rate:7.0f} commands/s ratio {result.rate / raw_then:.2f}"
                f" of raw {raw_then:.0f} measured just before (goal >= 0.25)  p50 "
                f"{result.p50_ms:.1f} ms  p99 {result.p99_ms:.1f} ms  failed {result.failed}"
            )
    for label, ceiling in (("wrk", http.wrk_ceiling), ("httpx", http.httpx_ceiling)):
        if ceiling is not None:
            print(
                f"GET /healthz, {label:5s}, 1 proc.: {ceiling:7.0f} req/s (the HTTP stack's ceiling with this client)"
            )
    print(
        f"command on 10,000 events    : {long_s * 1000:7.2f} ms  vs new session "
        f"{new_s * 1000:.2f} ms  ratio {long_s / new_s:.2f}  (goal <= 1.2)"
    )


if __name__ == "__main__":
    asyncio.run(main())
