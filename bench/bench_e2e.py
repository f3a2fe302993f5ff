"""End-to-end benchmark: command accepted -> visible through the query API, with all four
processes (`agentlog serve commands`, `serve queries`, `relay`, `project`) as subprocesses against
a fresh database and topic of its own, on the local stack.

1. sustainable rate: closed loop, `--clients` concurrent clients each send the measured pair (POST
   /v1/sessions/{id}/messages, then the GET below) for `--rate-seconds`: what the whole system
   sustains, relay, projector and query API included (they share the machine's cores);
2. latency: open loop at `--load` (default 0.5) of that rate for `--latency-seconds`: each command
   is sent at its scheduled time (never held back by a slow answer, so no coordinated omission);
   once answered, GET /v1/sessions/{id}?min_version=<answered version> on the query API.

Why min_version and not polling: the query API wakes a min_version read on the projector's NOTIFY
after the batch commit, so the GET returns within one notification + one SELECT of the moment the
read model shows the version; polling adds up to its interval in error and, at hundreds of
sessions, loads the API it measures. The figure is an upper bound of real visibility (the GET
starts only after the command's answer arrived) and exactly what a client reading its own writes
experiences. Time is measured from the scheduled send time.

The "raw limit" of latency in the same run is the command's own answer time (accepted): the
difference is what the relay, Kafka, the projector and the query API add. Goals: p50 <= 50 ms,
p99 <= 150 ms.

Run from the project root: `python -m bench.bench_e2e` against the local stack (`agentlog stack up`;
AGENTLOG_DATABASE_URL / AGENTLOG_KAFKA_BOOTSTRAP_SERVERS for others). It creates and drops its database and topic; nothing else is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from agentlog.edge import keys as auth
from agentlog.stack import kafka_probe
from agentlog.stack.stack import Stack
from bench.open_loop_host import pct
from bench.scratch import component_logs, drop_topics, scratch_database
from tests.system.processes import System  # the harness the system tests verify, reused as is

BODY = {"role": "assistant", "content": "I was charged twice, and I can't log in. " * 4, "agent": "bench"}


class Bench:
    def __init__(self, system: System, key: str, sessions: list[str]) -> None:
        self.system, self.sessions = system, sessions
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        headers = {"Authorization": f"Bearer {key}"}
        self.commands = httpx.AsyncClient(base_url=system.commands_url, headers=headers, limits=limits, timeout=30)
        self.queries = httpx.AsyncClient(base_url=system.queries_url, headers=headers, limits=limits, timeout=30)

    async def close(self) -> None:
        await self.commands.aclose()
        await self.queries.aclose()

    async def create_sessions(self) -> None:
        for session_id in self.sessions:
            (
                await self.commands.post("/v1/sessions", json={"session_id": session_id, "workflow": "bench"})
            ).raise_for_status()

    async def sustainable_rate(self, clients: int, seconds: float) -> float:
        """Closed loop of the measured pair (command, then its read-your-writes GET): pairs/s."""
        deadline = time.perf_counter() + seconds
        done = 0
        sink: dict[str, list] = {"accepted": [], "visible": [], "after_accept": [], "errors": []}

        async def client(i: int) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await self.one(self.sessions[(i + done * clients) % len(self.sessions)], time.perf_counter(), sink)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        if sink["errors"]:
            raise RuntimeError(f"errors while measuring the sustainable rate: {sink['errors'][:3]}")
        return done / (time.perf_counter() - started)

    async def one(self, session_id: str, scheduled: float, out: dict[str, list]) -> None:
        try:
            r = await self.commands.post(f"/v1/sessions/{session_id}/messages", json=BODY)
            r.raise_for_status()
            accepted = time.perf_counter()
            q = await self.queries.get(
                f"/v1/sessions/{session_id}", params={"min_version": r.json()["version"], "wait_ms": 10_000}
            )
            q.raise_for_status()
        except httpx.HTTPError as exc:
            out["errors"].append(repr(exc))
            return
        visible = time.perf_counter()
        out["accepted"].append(accepted - scheduled)
        out["visible"].append(visible - scheduled)
        out["after_accept"].append(visible - accepted)

    async def open_loop(self, rate: float, seconds: float) -> dict[str, list]:
        out: dict[str, list] = {"accepted": [], "visible": [], "after_accept": [], "errors": []}
        tasks, interval, started = [], 1 / rate, time.perf_counter()
        for n in range(int(rate * seconds)):
            scheduled = started + n * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # A session gets its next command only after the whole rotation: no self-contention.
            tasks.append(asyncio.create_task(self.one(self.sessions[n % len(self.sessions)], scheduled, out)))
        await asyncio.gather(*tasks)
        out["elapsed"] = [time.perf_counter() - started]
        return out


STAGES = """
SELECT e.event_id::text, e.recorded_at, v.updated_at AS projected_at
FROM projection_session_versions v
JOIN events e ON e.tenant = v.tenant AND e.session_id = v.session_id AND e.version = v.version
WHERE v.projector = $1
"""


async def stages(dsn: str, bootstrap: str, topic: str, group: str) -> dict[str, list[float]]:
    """Where the time goes, for each session's last event: stored (clock_timestamp of the insert)
    -> sent to Kafka (the record timestamp, taken by the producer at send) -> the projector's transaction start
    (consumer fetch). Same host clock for all three."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = {r["event_id"]: r for r in await conn.fetch(STAGES, group)}
    finally:
        await conn.close()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: dict[str, list[float]] = {"relay": [], "consume": []}
    try:
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while len(seen) < len(rows) and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                for record in batch:
                    event_id = dict(record.headers)["event_id"].decode()
                    row = rows.get(event_id)
                    if row is None or event_id in seen:
                        continue
                    seen.add(event_id)
                    on_kafka = record.timestamp / 1000
                    out["relay"].append(on_kafka - row["recorded_at"].timestamp())
                    out["consume"].append(row["projected_at"].timestamp() - on_kafka)
    finally:
        await consumer.stop()
    return out


async def run(args: argparse.Namespace) -> dict:
    stack = Stack.from_settings()
    with component_logs("e2e") as logs:
        async with scratch_database(stack.database_url()) as dsn:
            return await _run(args, stack.kafka_bootstrap(), dsn, logs)


async def _run(args: argparse.Namespace, bootstrap: str, dsn: str, logs: Path) -> dict:
    topic = f"agentlog.bench.e2e.{uuid.uuid4().hex[:8]}.v1"
    await kafka_probe.ensure_topic(bootstrap, topic, partitions=3)
    conn = await asyncpg.connect(dsn)
    key = await auth.create_key(conn, "bench", "writer", "bench_e2e")
    await conn.close()
    system = System(dsn, bootstrap, topic, logs)
    try:
        await system.start()
        bench = Bench(system, key, [f"e2e-{i}" for i in range(args.sessions)])
        try:
            await bench.create_sessions()
            await bench.sustainable_rate(args.clients, 1.0)  # warm-up: connections, plans, JIT of nothing
            capacity = await bench.sustainable_rate(args.clients, args.rate_seconds)
            target = capacity * args.load
            result = await bench.open_loop(target, args.latency_seconds)
        finally:
            await bench.close()
        result.update(await stages(dsn, bootstrap, topic, system.env["AGENTLOG_PROJECTOR_GROUP_ID"]))
    finally:
        system.close()
        await drop_topics(bootstrap, topic)
    return {"capacity": capacity, "target": target, **result}


def report(r: dict, args: argparse.Namespace) -> None:
    n = len(r["visible"])
    print(
        f"end to end: {args.sessions} sessions, {args.clients} clients for the capacity, "
        f"open loop at {args.load:.0%} for {args.latency_seconds:.0f} s; 4 processes + client on this machine"
    )
    print(f"sustainable command rate : {r['capacity']:8.0f} commands/s (closed loop of command + read-your-writes GET)")
    print(
        f"open-loop rate           : {r['target']:8.0f} commands/s target, "
        f"{n / r['elapsed'][0]:.0f}/s achieved, n={n}, errors={len(r['errors'])}"
    )
    print(f"command accepted (limit) : p50 {pct(r['accepted'], 0.5):6.1f} ms  p99 {pct(r['accepted'], 0.99):6.1f} ms")
    print(
        f"visible via query API    : p50 {pct(r['visible'], 0.5):6.1f} ms  p99 {pct(r['visible'], 0.99):6.1f} ms"
        f"  max {pct(r['visible'], 1.0):.1f} ms  (goal p50 <= 50, p99 <= 150)"
    )
    print(
        f"  of which after accepted: p50 {pct(r['after_accept'], 0.5):6.1f} ms  "
        f"p99 {pct(r['after_accept'], 0.99):6.1f} ms  (relay + Kafka + projector + query)"
    )
    print(
        f"ratio visible/accepted   : p50 {pct(r['visible'], 0.5) / pct(r['accepted'], 0.5):.2f}  "
        f"p99 {pct(r['visible'], 0.99) / pct(r['accepted'], 0.99):.2f}"
    )
    print(
        f"  stored -> on Kafka     : p50 {pct(r['relay'], 0.5):6.1f} ms  p99 {pct(r['relay'], 0.99):6.1f} ms"
        f"  (relay: NOTIFY, read, send; the record timestamp is taken at send; n={len(r['relay'])} last events)"
    )
    print(
        f"  on Kafka -> projecting : p50 {pct(r['consume'], 0.5):6.1f} ms  p99 {pct(r['consume'], 0.99):6.1f} ms"
        "  (consumer fetch to the projector's transaction start)"
    )
    for error in r["errors"][:5]:
        print(f"  error: {error}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate-seconds", type=float, default=5.0)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--load", type=float, default=0.5, help="fraction of the sustainable rate")
    args = parser.parse_args(argv)
    report(asyncio.run(run(args)), args)


if __name__ == "__main__":
    main()
