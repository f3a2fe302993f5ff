"""Open-loop load for the system benchmark: POST /messages at scheduled times over raw keep-alive
HTTP/1.1 connections, and each command's visibility in the read models.

Invariants:
- Every latency is measured from the command's scheduled send time, and a slow answer never holds
  back a later send (a new connection is opened when none is idle, up to `max_connections`;
  beyond that a command waits for one, and that wait counts in its latency): no coordinated
  omission.
- A raw client, not httpx: at hundreds of commands per second a Python HTTP client takes much of
  the CPU the system under test needs on a 2-core machine.
- Visible means the projector committed the command's version: `projection_session_versions` is
  written in the same transaction as every read model. The watcher LISTENs on the projector's
  NOTIFY (sent with each batch commit) and then reads the versions of the sessions it waits for in
  one statement, as the query API's read-your-writes waiter does, with a 20 ms poll as a fallback;
  so the figure is an upper bound by one notification and one SELECT, without putting a GET per
  command on the query API.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

import asyncpg
import orjson

PROJECTED = "agentlog_projected"
VERSIONS = """
SELECT session_id, version FROM projection_session_versions
WHERE projector = $1 AND tenant = $2 AND session_id = ANY($3::text[])
"""


@dataclass
class Latencies:
    accepted: list[float] = field(default_factory=list)  # scheduled -> answer received
    visible: list[float] = field(default_factory=list)  # scheduled -> seen in the read models
    after_accept: list[float] = field(default_factory=list)  # answer received -> seen: the pipeline's part
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    generator_cpu: float = 0.0  # CPU seconds of the process generating the load
    machine_cores_busy: float = 0.0


class VisibilityWatch:
    """Waits for (session, version) pairs to be projected; records scheduled -> visible."""

    def __init__(self, dsn: str, projector_group: str, tenant: str, out: Latencies) -> None:
        self._dsn, self._group, self._tenant, self._out = dsn, projector_group, tenant, out
        self._pending: dict[str, deque[tuple[int, float, float]]] = defaultdict(deque)
        self._wake = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> VisibilityWatch:
        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.add_listener(PROJECTED, lambda *_: self._wake.set())
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._task is not None and self._conn is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._conn.close()

    def expect(self, session_id: str, version: int, scheduled: float, accepted: float) -> None:
        self._pending[session_id].append((version, scheduled, accepted))
        self._wake.set()

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._pending.values())

    async def _run(self) -> None:
        assert self._conn is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.02)
            self._wake.clear()
            if not self._pending:
                continue
            rows = await self._conn.fetch(VERSIONS, self._group, self._tenant, list(self._pending))
            seen = time.perf_counter()
            for row in rows:
                queue = self._pending[row["session_id"]]
                while queue and queue[0][0] <= row["version"]:
                    _, scheduled, accepted = queue.popleft()
                    self._out.visible.append(seen - scheduled)
                    self._out.after_accept.append(seen - accepted)
                if not queue:
                    del self._pending[row["session_id"]]


class RawClient:
    """Keep-alive HTTP/1.1 connections to the command API, opened as needed and reused."""

    def __init__(self, port: int, key: str, body: dict, max_connections: int = 64) -> None:
        self._port = port
        self._slots = asyncio.Semaphore(max_connections)
        self._body = orjson.dumps(body)
        self._head = (
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(self._body)}\r\n\r\n"
        ).encode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post_message(self, session_id: str) -> dict:
        """POST /v1/sessions/{id}/messages; the decoded answer (raises on a non-2xx)."""
        async with self._slots:
            conn = self._idle.pop() if self._idle else await asyncio.open_connection("127.0.0.1", self._port)
            reader, writer = conn
            request = b"POST /v1/sessions/%s/messages HTTP/1.1\r\n" % session_id.encode()
            try:
                writer.write(request + self._head + self._body)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                payload = await reader.readexactly(_content_length(head))
            except BaseException:
                writer.close()  # a connection cut mid-exchange is not reused
                raise
            self._idle.append(conn)
        if not 200 <= status < 300:
            raise RuntimeError(f"HTTP {status}: {payload[:200]!r}")
        return orjson.loads(payload)

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


def _content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.partition(b":")[2])
    raise RuntimeError(f"answer without Content-Length: {head[:200]!r}")


async def open_loop(
    client: RawClient, watch: VisibilityWatch, out: Latencies, sessions: list[str], rate: float, seconds: float
) -> None:
    """Send `rate` commands/s for `seconds`, round-robin over `sessions` (a session gets its next
    command only after the whole rotation); returns once every answer arrived."""
    interval, started = 1 / rate, time.perf_counter()

    async def one(session_id: str, scheduled: float) -> None:
        try:
            answer = await client.post_message(session_id)
        except (OSError, RuntimeError, asyncio.IncompleteReadError) as exc:
            out.errors.append(repr(exc))
            return
        accepted = time.perf_counter()
        out.accepted.append(accepted - scheduled)
        watch.expect(session_id, answer["version"], scheduled, accepted)

    tasks = []
    for n in range(int(rate * seconds)):
        scheduled = started + n * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(sessions[n % len(sessions)], scheduled)))
    await asyncio.gather(*tasks)
    out.elapsed = time.perf_counter() - started
