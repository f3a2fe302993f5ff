"""PostgreSQL stopped with `-m immediate` and started again under a concurrent write load, with the
whole pipeline running as processes (command API, query API, relay, projector) on a cluster of this
test's own (never the shared stack) and a topic of its own on the shared Kafka.

Issue 9 ("a Postgres restart under load after which every component, the projector and the query
API's listener included, recovers by itself with exact counts"). Each component rides the outage out
alone: same PIDs at the end, none restarted. Writers behave like a real client: one Idempotency-Key
per logical write, retried on connection errors and 503 until acknowledged. At the end the counts
are exact: the store holds each acknowledged write once, Kafka every version of every session in
order (duplicates allowed), the read models equal the store, nothing is parked. The query API's
fallback poll is set to ten minutes, so a read-your-writes read answered within seconds after the
restart was answered through its re-opened LISTEN connection and nothing else.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import asyncpg
import httpx

from agentlog.edge import keys as auth
from agentlog.stack.postgres import PostgresCluster
from eventstore import db
from tests.integration.relay_support import TopicReader, assert_complete_and_ordered, assert_duplicates_identical
from tests.system.processes import System, postgres_of_its_own
from tests.waiting import wait_until

WRITERS = 6
SESSIONS = 24
NEW_SESSION_EVERY = 12  # every 12th logical write of a writer starts a session (an append to "no stream")
BEFORE_EVENTS = 300  # acknowledged before Postgres stops
AFTER_EVENTS = 300  # acknowledged after it is back
FALLBACK_POLL_MS = 600_000  # the query API's poll: far beyond every deadline here
RECOVERY_S = 45.0  # the deadline of each component's recovery
TENANT = "acme"


@dataclass(frozen=True)
class Ack:
    at: float  # time.monotonic() when the answer arrived
    session_id: str
    version: int
    position: int


class Writers:
    """Concurrent clients sending commands until stopped; each logical write is retried with its
    Idempotency-Key until acknowledged, and only acknowledged answers are counted."""

    def __init__(self, url: str, key: str, sessions: int) -> None:
        self.url, self.key = url, key
        self.run = uuid.uuid4().hex[:6]
        self.sessions = [f"rs-{self.run}-{i}" for i in range(sessions)]
        self.acked: Counter[str] = Counter()  # events acknowledged per session
        self.event_ids: list[str] = []  # every acknowledged event id, once per logical write
        self.acks: list[Ack] = []
        self.retried: Counter[str] = Counter()  # attempts answered by a retriable failure, by cause
        self.replayed = 0  # retries answered from the Idempotency-Key: the first attempt had committed
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def start(self, writers: int) -> None:
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=30) as client:
            for session_id in self.sessions:
                await self.write(client, *self._start(session_id))
        self.tasks = [asyncio.create_task(self._writer(i)) for i in range(writers)]

    def _start(self, session_id: str) -> tuple[str, str, dict]:
        return "POST", "/v1/sessions", {"session_id": session_id, "workflow": "restart", "agents": ["a"]}

    def _command(self, session_id: str, n: int) -> tuple[str, str, dict]:
        """(method, path, body): a message, a state patch, or a tool call requested and completed."""
        base = f"/v1/sessions/{session_id}"
        if n % 3 == 0:
            return "POST", f"{base}/messages", {"role": "assistant", "content": f"turn {n}", "agent": "a"}
        if n % 3 == 1:
            return "PATCH", f"{base}/state/notes?agent=a", {"turn": n, f"k{n % 7}": n}
        call = f"c-{uuid.uuid4().hex[:8]}"
        return (
            "POST",
            f"{base}/commands",
            {
                "commands": [
                    {"type": "request_tool_call", "call_id": call, "tool": f"tool{n % 4}", "agent": "a"},
                    {"type": "complete_tool_call", "call_id": call, "result": {"n": n}, "duration_ms": n % 50},
                ]
            },
        )

    async def write(self, client: httpx.AsyncClient, method: str, path: str, body: dict) -> Ack:
        """One logical write: the same Idempotency-Key on every attempt until it is acknowledged."""
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        attempt = 0
        while True:
            try:
                response = await client.request(method, path, json=body, headers=headers)
            except httpx.TransportError as exc:
                self.retried[type(exc).__name__] += 1
            else:
                if response.is_success:
                    self.replayed += response.headers.get("idempotent-replayed") == "true"
                    return self._acknowledged(response.json())
                assert response.status_code == 503, (method, path, response.status_code, response.text)
                assert response.headers.get("retry-after"), response.headers
                self.retried["503"] += 1
            attempt += 1
            # The client's backoff between attempts (what a real client does), not a synchronisation.
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))

    def _acknowledged(self, answer: dict) -> Ack:
        ack = Ack(time.monotonic(), answer["session_id"], answer["version"], answer["position"])
        self.acked[ack.session_id] += len(answer["event_ids"])
        self.event_ids.extend(answer["event_ids"])
        self.acks.append(ack)
        return ack

    async def _writer(self, seed: int) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=30) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                if n % NEW_SESSION_EVERY == 0:
                    session_id = f"rs-{self.run}-w{seed}-{n}"
                    await self.write(client, *self._start(session_id))
                    self.sessions.append(session_id)
                else:
                    await self.write(client, *self._command(rng.choice(self.sessions), n))

    @property
    def total(self) -> int:
        return sum(self.acked.values())

    def check(self) -> bool:
        for task in self.tasks:
            if task.done():
                task.result()  # a writer that met a non-retriable answer fails the test at once
        return True

    async def until_total(self, events: int, timeout: float) -> None:
        await wait_until(
            lambda: self.check() and self.total >= events, timeout=timeout, message=f"{events} events acknowledged"
        )

    def first_ack_after(self, moment: float) -> Ack | None:
        return next((ack for ack in self.acks if ack.at >= moment), None)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), RECOVERY_S)


async def test_postgres_restart_under_load_every_component_recovers_alone_with_exact_counts(
    kafka_bootstrap: str, topic: str, tmp_path
) -> None:
    async with postgres_of_its_own("agentlog-restart-pg-") as cluster:
        key = await _writer_key(cluster.dsn)
        system = System(
            cluster.dsn,
            kafka_bootstrap,
            topic,
            tmp_path / "logs",
            AGENTLOG_QUERIES_POLL_INTERVAL_MS=str(FALLBACK_POLL_MS),
        )
        try:
            await system.start()
            pids = {c.name: c.proc.pid for c in system.components}
            writers = Writers(system.commands_url, key, SESSIONS)
            probe = Probe(system, writers)
            await writers.start(WRITERS)
            await probe.start()
            await writers.until_total(BEFORE_EVENTS, timeout=60)

            outage_s, restarted = await _restart_postgres_under_load(cluster, system, writers)
            recovery = await _recoveries(cluster.dsn, system, writers, probe, restarted)
            await writers.until_total(writers.total + AFTER_EVENTS, timeout=60)
            await writers.finish()

            await _drained(cluster.dsn, system)
            steady_ms = await probe.read_your_write_latency_ms()
            counts = await _assert_counts(cluster.dsn, system, writers)
            for component in system.components:
                assert component.running(), f"{component.name} exited:\n{component.log()[-3000:]}"
                assert (component.incarnation, component.proc.pid) == (1, pids[component.name]), component.name
        except BaseException:
            _print_logs(system)
            raise
        finally:
            codes = system.close()
    assert codes == {name: 0 for name in codes}, codes
    print(
        f"\n{counts['events']} events in {counts['sessions']} sessions ({counts['records']} Kafka records, "
        f"{counts['duplicates']} duplicates; {counts['timeline']} timeline rows); Postgres down {outage_s:.1f} s, "
        f"client retries {dict(writers.retried)}, {writers.replayed} answered by replay; recovered after the restart: "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in recovery.items())
        + f"; read-your-writes by notification afterwards {steady_ms:.0f} ms"
    )


async def _restart_postgres_under_load(
    cluster: PostgresCluster, system: System, writers: Writers
) -> tuple[float, float]:
    """Stop Postgres (immediate: no checkpoint, every connection cut) while the writers write; start
    it again once the outage is felt everywhere. Returns the outage's length and the restart time."""
    retried_before = sum(writers.retried.values())
    stopped = time.monotonic()
    await asyncio.to_thread(cluster.stop, "immediate")

    async def felt() -> bool:
        writers.check()
        return (
            sum(writers.retried.values()) - retried_before >= 3 * WRITERS
            and await _status(f"{system.commands_url}/readyz") == 503
            and await _status(f"{system.queries_url}/readyz") == 503
        )

    await wait_until(felt, timeout=30, message="the outage answered 503 / retried by every side")
    await asyncio.to_thread(cluster.start)
    restarted = time.monotonic()
    return restarted - stopped, restarted


async def _recoveries(dsn: str, system: System, writers: Writers, probe: Probe, restarted: float) -> dict[str, float]:
    """Seconds from the restart until each component did its job again, measured concurrently."""

    async def commands() -> float:
        ack = await wait_until(
            lambda: writers.check() and writers.first_ack_after(restarted), timeout=RECOVERY_S, message="a write acked"
        )
        return ack.at - restarted

    async def relay_and_projector() -> dict[str, float]:
        ack = await wait_until(lambda: writers.first_ack_after(restarted), timeout=RECOVERY_S, message="a write")
        # Published: its outbox row is deleted only after Kafka acknowledged it.
        await wait_until(lambda: _published_up_to(dsn, ack.position), timeout=RECOVERY_S, message="relay")
        published = time.monotonic() - restarted
        group = system.env["AGENTLOG_PROJECTOR_GROUP_ID"]
        await wait_until(lambda: _projected(dsn, group, ack), timeout=RECOVERY_S, message="projector")
        return {"relay": published, "projector": time.monotonic() - restarted}

    async def queries_ready() -> float:
        await wait_until(
            lambda: _status(f"{system.queries_url}/readyz", 200), timeout=RECOVERY_S, message="query API ready"
        )
        return time.monotonic() - restarted

    async def listener() -> float:
        await probe.answered_by_notification()
        return time.monotonic() - restarted

    took = await asyncio.gather(commands(), relay_and_projector(), queries_ready(), listener())
    return {"command API": took[0], **took[1], "query API /readyz": took[2], "query API LISTEN": took[3]}


class Probe:
    """Read-your-writes on a session of its own: a read that waits for a version not yet written,
    then that write. With the fallback poll at ten minutes, only the query API's LISTEN connection
    (a NOTIFY, or the refresh it asks for when it re-opens) can answer the read before its wait ends.
    (At the end of its wait a read checks once more and may answer 200: hence the bound on latency.)"""

    WAIT_MS = 30_000
    # A read answered within half its wait was released by a notification, not by its deadline.
    NOTIFIED_WITHIN_S = WAIT_MS / 1000 / 2

    def __init__(self, system: System, writers: Writers) -> None:
        self.system, self.writers = system, writers
        self.session_id = f"probe-{writers.run}"
        self.version = 0

    async def start(self) -> None:
        async with httpx.AsyncClient(base_url=self.system.commands_url, headers=self.writers.headers) as client:
            self.version = (await self.writers.write(client, *self.writers._start(self.session_id))).version

    async def answered_by_notification(self) -> float:
        """Register a wait for the next version, write it; seconds from the ack to the answer."""
        wanted = self.version + 1
        query = httpx.AsyncClient(base_url=self.system.queries_url, headers=self.writers.headers, timeout=60)
        async with query, httpx.AsyncClient(base_url=self.system.commands_url, headers=self.writers.headers) as cmd:
            read = await self._registered_read(query, wanted)
            registered = time.monotonic()
            ack = await self.writers.write(cmd, "POST", f"/v1/sessions/{self.session_id}/messages", _probe_message())
            self.version = ack.version
            response = await read
            answered = time.monotonic()
        assert response.status_code == 200, (response.status_code, response.text)
        assert response.json()["version"] >= wanted
        assert answered - registered < self.NOTIFIED_WITHIN_S, (
            f"the read waited {answered - registered:.1f} s of its {self.WAIT_MS / 1000:g} s: "
            "answered by its deadline, not by a notification"
        )
        return answered - ack.at

    async def _registered_read(self, query: httpx.AsyncClient, wanted: int) -> asyncio.Task:
        """A min_version read in flight whose wait is registered (the query API's gauge says so);
        a read answered 503 at once (a pool connection Postgres cut) is sent again."""
        path = f"/v1/sessions/{self.session_id}?min_version={wanted}&wait_ms={self.WAIT_MS}"
        deadline = time.monotonic() + RECOVERY_S
        while time.monotonic() < deadline:
            read = asyncio.create_task(query.get(path))

            async def registered_or_answered(read: asyncio.Task = read) -> bool:
                return read.done() or await _waiting_reads(self.system.queries_url) >= 1

            await wait_until(registered_or_answered, timeout=RECOVERY_S, message="a min_version read registered")
            if not read.done():
                return read
            response = read.result()
            assert response.status_code == 503, (response.status_code, response.text)
        raise AssertionError(f"no min_version read could be registered on the query API in {RECOVERY_S} s")

    async def read_your_write_latency_ms(self) -> float:
        return await self.answered_by_notification() * 1000


def _probe_message() -> dict:
    return {"role": "user", "content": "are you there?", "agent": "a"}


async def _waiting_reads(url: str) -> float:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{url}/metrics")
    except httpx.TransportError:
        return 0
    for line in response.text.splitlines() if response.status_code == 200 else ():
        if line.startswith("agentlog_queries_waiting_reads "):
            return float(line.split()[1])
    return 0


async def _status(url: str, wanted: int | None = None) -> int | bool:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            status = (await client.get(url)).status_code
    except httpx.TransportError:
        status = 0
    return status == wanted if wanted is not None else status


async def _writer_key(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return await auth.create_key(conn, TENANT, "writer", "postgres restart test")
    finally:
        await conn.close()


async def _fetchval(dsn: str, sql: str, *args):
    """One query on a fresh connection; None while Postgres does not answer."""
    try:
        conn = await asyncpg.connect(dsn)
    except db.CONNECTION_ERRORS:
        return None
    try:
        return await conn.fetchval(sql, *args)
    except db.CONNECTION_ERRORS:
        return None
    finally:
        await conn.close()


async def _published_up_to(dsn: str, position: int) -> bool:
    return await _fetchval(dsn, "SELECT NOT EXISTS (SELECT 1 FROM outbox WHERE position <= $1)", position) is True


async def _projected(dsn: str, group: str, ack: Ack) -> bool:
    version = await _fetchval(
        dsn,
        "SELECT version FROM projection_session_versions WHERE projector = $1 AND tenant = $2 AND session_id = $3",
        group,
        TENANT,
        ack.session_id,
    )
    return version is not None and version >= ack.version


PROJECTED_BEHIND = """
SELECT count(*) FROM streams s LEFT JOIN projection_session_versions v
  ON v.projector = $1 AND v.tenant = s.tenant AND v.session_id = s.session_id
WHERE v.version IS DISTINCT FROM s.version
"""


async def _drained(dsn: str, system: System) -> None:
    """The load is over: the relay empties the outbox and the projector reaches every stream version."""

    async def empty() -> bool:
        return await _fetchval(dsn, "SELECT count(*) = 0 FROM outbox") is True

    await wait_until(empty, timeout=30, message="outbox drained")
    group = system.env["AGENTLOG_PROJECTOR_GROUP_ID"]

    async def caught_up() -> bool:
        return await _fetchval(dsn, PROJECTED_BEHIND, group) == 0

    await wait_until(caught_up, timeout=45, message="every session projected to its stream version")


async def _assert_counts(dsn: str, system: System, writers: Writers) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        streams = dict(await conn.fetch("SELECT session_id, version FROM streams WHERE tenant = $1", TENANT))
        event_ids = [str(r[0]) for r in await conn.fetch("SELECT event_id FROM events")]
        timeline = await conn.fetch(
            "SELECT session_id, count(*) AS n, min(version) AS lo, max(version) AS hi "
            "FROM session_timeline_v1 GROUP BY session_id"
        )
        summaries = dict(await conn.fetch("SELECT session_id, last_version FROM session_summaries_v1"))
        completed = await conn.fetchval("SELECT count(*) FROM tool_calls_v1 WHERE status = 'completed'")
        requested = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'ToolCallRequested'")
        parked = await conn.fetchval("SELECT count(*) FROM projection_parked_events")
        unpublishable = await conn.fetchval("SELECT count(*) FROM outbox_parked")
    finally:
        await conn.close()
    # Store = what the writers were told, each logical write once: a retry whose first attempt had
    # committed was answered from its Idempotency-Key, not appended again.
    assert len(writers.event_ids) == len(set(writers.event_ids)), "an event id acknowledged by two writes"
    assert sorted(event_ids) == sorted(writers.event_ids)
    assert streams == dict(writers.acked)
    # Kafka: every version of every session, per key in version order; duplicates are identical copies.
    async with TopicReader(
        system.env["AGENTLOG_KAFKA_BOOTSTRAP_SERVERS"], system.env["AGENTLOG_KAFKA_TOPIC"]
    ) as reader:

        async def complete() -> bool:
            await reader.poll()
            return reader.distinct_events() >= len(event_ids)

        await wait_until(complete, timeout=30, message=f"{len(event_ids)} distinct records on the topic")
    assert_complete_and_ordered(reader.records, streams)
    duplicates = assert_duplicates_identical(reader.records)
    # Read models = store: one timeline row per version, each summary at its stream version.
    assert {r["session_id"]: (r["n"], r["lo"], r["hi"]) for r in timeline} == {
        session_id: (version, 1, version) for session_id, version in streams.items()
    }
    assert summaries == streams
    assert completed == requested and parked == 0 and unpublishable == 0
    return {
        "events": len(event_ids),
        "sessions": len(streams),
        "records": len(reader.records),
        "duplicates": duplicates,
        "timeline": sum(r["n"] for r in timeline),
    }


def _print_logs(system: System) -> None:
    for component in system.components:
        print(f"\n--- {component.name} (last 4000 characters of {component.log_path.name}) ---")
        print(component.log()[-4000:])
