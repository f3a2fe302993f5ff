"""LangGraph benchmark (issue 13): a graph of 20 deterministic steps run `--runs` times (each on a
thread of its own, `--concurrency` at once, graph.ainvoke) with agentlog's saver and with
langgraph-checkpoint-postgres's saver, on the same PostgreSQL, in one run; prints steps per second
of each and the ratio.

agentlog's side is the whole deployment, as in bench_e2e (`agentlog serve commands`, `serve
queries`, `relay`, `project` as subprocesses on a scratch database and topic): every checkpoint
and task write is an HTTP command appended with its outbox row, published to Kafka and projected
into the read model the saver reads back (read-your-writes). The Postgres saver writes its three
tables directly, in a scratch database of its own on the same server. After each side the last
checkpoint of every thread is read back and checked (20 steps done), so a lost write cannot pass
for speed.

Goal (issue 13): agentlog >= 0.5 of the Postgres saver's steps per second, given the extra
durability (outbox, Kafka, read models).

Besides the rates (which a shared machine's load moves a lot), it prints what a step costs,
which load moves little: the saver's HTTP requests per step by endpoint, and CPU milliseconds per
step of each process (and of the PostgreSQL backends serving it), on both sides.

Run from the project root: `python -m bench.bench_langgraph` against the local stack
(`agentlog stack up`; AGENTLOG_DATABASE_URL / AGENTLOG_KAFKA_BOOTSTRAP_SERVERS for others).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any, TypedDict

import asyncpg
import httpx
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from agentlog.client import AgentlogClient, AsyncAgentlogClient, RetryPolicy
from agentlog.client.transport import LeanAsyncTransport
from agentlog.edge import keys as auth
from agentlog.integrations.langgraph import AgentlogSaver
from agentlog.stack import kafka_probe
from agentlog.stack.stack import Stack
from bench.process_cpu import CpuMeter
from bench.scratch import component_logs, scratch_database
from tests.system.processes import System  # the harness the system tests verify, reused as is

STEPS = 20


class Counter(TypedDict):
    count: int
    trail: list[str]


def step(n: int):
    def node(state: Counter) -> dict[str, Any]:
        return {"count": state["count"] + 1, "trail": [*state["trail"], f"s{n}"][-5:]}

    node.__name__ = f"s{n}"
    return node


def build(saver: BaseCheckpointSaver):
    graph = StateGraph(Counter)
    for n in range(STEPS):
        graph.add_node(f"s{n}", step(n))
        graph.add_edge(START if n == 0 else f"s{n - 1}", f"s{n}")
    graph.add_edge(f"s{STEPS - 1}", END)
    return graph.compile(checkpointer=saver)


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the saver's requests by method and endpoint (the path's last part), sent by the
    client's own default transport (LeanAsyncTransport), or httpx's with `--httpcore`."""

    def __init__(self, httpcore: bool = False) -> None:
        self.inner: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport() if httpcore else LeanAsyncTransport()
        self.counts: dict[str, int] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        name = f"{request.method} {request.url.path.rstrip('/').rsplit('/', 1)[-1]}"
        self.counts[name] = self.counts.get(name, 0) + 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def per_step(spent: dict[str, tuple[float, float]], steps: int) -> dict[str, dict[str, float]]:
    """CPU milliseconds per step: each process's own, and its PostgreSQL backends'."""
    return {
        name: {"own_ms": round(own * 1000 / steps, 2), "postgres_ms": round(backends * 1000 / steps, 2)}
        for name, (own, backends) in spent.items()
    }


async def drive(saver: BaseCheckpointSaver, runs: int, concurrency: int, prefix: str) -> float:
    """Seconds to run `runs` graphs, `concurrency` at once, each on a new thread; checks each."""
    graph = build(saver)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(runs):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            out = await graph.ainvoke({"count": 0, "trail": []}, {"configurable": {"thread_id": f"{prefix}-{i}"}})
            assert out["count"] == STEPS, out

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    for i in range(runs):  # every thread's last checkpoint, read back: 20 steps stored
        last = await saver.aget_tuple({"configurable": {"thread_id": f"{prefix}-{i}"}})
        assert last is not None and last.checkpoint["channel_values"]["count"] == STEPS, (i, last)
    return elapsed


async def postgres_side(admin_dsn: str, runs: int, concurrency: int) -> tuple[float, dict[str, Any]]:
    async with scratch_database(admin_dsn) as dsn:  # migrated for agentlog too; the saver adds its tables
        pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=concurrency + 2,
            open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        await pool.open()
        try:
            saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await saver.setup()
            await drive(saver, max(4, runs // 20), concurrency, "warm")
            meter = CpuMeter(dsn, {"bench": os.getpid()})
            before = await meter.snapshot()
            elapsed = await drive(saver, runs, concurrency, "pg")
            return elapsed, {"cpu_per_step": per_step(meter.spent(before, await meter.snapshot()), runs * STEPS)}
        finally:
            await pool.close()


async def agentlog_side(
    admin_dsn: str, bootstrap: str, runs: int, concurrency: int, httpcore: bool = False
) -> tuple[float, dict[str, Any]]:
    async with scratch_database(admin_dsn) as dsn:
        topic = f"agentlog.bench.{uuid.uuid4().hex[:8]}.v1"
        await kafka_probe.ensure_topic(bootstrap, topic, partitions=3)
        conn = await asyncpg.connect(dsn)
        try:
            key = await auth.create_key(conn, "bench", "writer")
        finally:
            await conn.close()
        with component_logs("langgraph") as log_dir:
            async with System(dsn, bootstrap, topic, log_dir) as system:
                options: dict[str, Any] = {
                    "commands_url": system.commands_url,
                    "queries_url": system.queries_url,
                    "retry": RetryPolicy(max_attempts=10, max_elapsed_s=60),
                }
                counting = CountingTransport(httpcore)
                async_client = AsyncAgentlogClient(key, transport=counting, **options)
                saver = AgentlogSaver(AgentlogClient(key, **options), async_client=async_client)
                processes = {c.name: c.proc.pid for c in system.components if c.proc is not None}
                meter = CpuMeter(dsn, {**processes, "bench": os.getpid()})
                try:
                    await drive(saver, max(4, runs // 20), concurrency, "warm")
                    counting.counts.clear()
                    before = await meter.snapshot()
                    elapsed = await drive(saver, runs, concurrency, "al")
                    spent = meter.spent(before, await meter.snapshot())
                finally:
                    await saver.aclose()
                steps = runs * STEPS
                requests = {name: round(n / steps, 3) for name, n in sorted(counting.counts.items())}
                return elapsed, {"requests_per_step": requests, "cpu_per_step": per_step(spent, steps)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack.from_settings()
    admin, bootstrap = stack.database_url(), stack.kafka_bootstrap()
    pg, pg_costs = await postgres_side(admin, args.runs, args.concurrency)
    al, al_costs = await agentlog_side(admin, bootstrap, args.runs, args.concurrency, args.httpcore)
    steps = args.runs * STEPS
    result = {
        "runs": args.runs,
        "steps_per_run": STEPS,
        "concurrency": args.concurrency,
        "postgres_saver_s": round(pg, 2),
        "agentlog_saver_s": round(al, 2),
        "postgres_saver_steps_per_s": round(steps / pg, 1),
        "agentlog_saver_steps_per_s": round(steps / al, 1),
        "ratio": round(pg / al, 3),
        "goal": ">= 0.5",
        "postgres_saver_costs": pg_costs,
        "agentlog_saver_costs": al_costs,
    }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--httpcore", action="store_true", help="the saver's client on httpx's own transport (A/B)")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
