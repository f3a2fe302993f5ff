"""Load generator of the system benchmark: POST /messages over keep-alive HTTP/1.1 connections,
open loop (commands sent at scheduled times) or closed loop (a fixed number of connections, each
sending its next command when the answer to the last arrived), and each command's visibility in
the read models.

Invariants:
- Open loop: command n is due at start + n / rate, whatever happened to the commands before it;
  every latency is measured from that due time, so a slow answer (or a late generator) shows in the
  latency of every command it delays, never hidden by sending less (no coordinated omission). A
  due command goes out on an idle connection, or on a new one (up to `max_connections`); beyond
  that it waits in a queue, and that wait counts in its latency.
- A warm-up at the same rate precedes the measured window; its commands are not counted. The
  achieved rate is the answers received inside the measured window over its length: below the
  target, the system (or the generator) did not keep up, and the latencies measure a growing queue.
- Cheap per command, because the generator shares the 2 cores with the system it measures: one
  asyncio Protocol per connection (no task, stream or future per command), requests encoded once
  per session before the load, answers parsed by hand (status line, Content-Length, the version
  from the JSON body). On this machine a loop wake-up alone costs ~0.06 ms of CPU, as much as the
  rest of a command's handling, so due commands go out on the wake-up of an answer when one comes
  within SLACK_S (2 ms) of their due time, on a timer otherwise (_Schedule); a command sent up to
  2 ms after its due time has those 2 ms in its latency (`send_lag` reports them). The caller
  measures the process's CPU per command and reports it.
- Visible means the projector committed the command's version: `projection_session_versions` is
  written in the same transaction as every read model. The watcher LISTENs on the projector's
  NOTIFY (sent with each batch commit) and then reads the versions of the sessions it waits for in
  one statement, as the query API's read-your-writes waiter does, with a 100 ms poll as a fallback
  (a commit notified before its answer arrived here waits for the next NOTIFY, or the poll); so
  the figure is an upper bound by one notification and one SELECT, without putting a GET per
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
POLL_S = 0.1  # the watcher's fallback read; under load the projector's NOTIFYs come far more often
SLACK_S = 0.002  # a due command waits at most this long for a wake-up of the loop; see _Schedule
DRAIN_S = 30.0  # how long answers and visibility are awaited after the last send
# An idle connection is closed, not reused, after this long: uvicorn closes keep-alive connections
# idle for 5 s (timeout_keep_alive), and a command sent as it did so was lost to a reset (3 in a
# run of 13,000). HTTP clients expire idle connections before the server does for that reason.
IDLE_EXPIRY_S = 4.0


@dataclass
class Latencies:
    accepted: list[float] = field(default_factory=list)  # scheduled -> answer received
    accepted_due: list[float] = field(default_factory=list)  # each of those answers' scheduled time (perf_counter)
    visible: list[float] = field(default_factory=list)  # scheduled -> seen in the read models
    visible_due: list[float] = field(default_factory=list)  # each of those commands' scheduled time (perf_counter)
    visible_keys: list[tuple[str, int]] = field(default_factory=list)  # each of those commands' (session, version)
    after_accept: list[float] = field(default_factory=list)  # answer received -> seen: the pipeline's part
    send_lag: list[float] = field(default_factory=list)  # scheduled -> written (the generator's own lateness)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0  # the measured window (seconds)
    target_rate: float = 0.0
    answered_in_window: int = 0  # 2xx answers received inside the measured window
    sent: int = 0  # commands sent, warm-up included
    generator_cpu: float = 0.0  # CPU seconds of the process generating the load (watch included)
    watch_backend_cpu: float = 0.0  # CPU seconds of the watcher's Postgres backend
    machine_cores_busy: float = 0.0
    # time.time() - time.perf_counter(), read once: the due times above as wall-clock times
    wall_offset: float = field(default_factory=lambda: time.time() - time.perf_counter())

    @property
    def achieved_rate(self) -> float:
        return self.answered_in_window / self.elapsed if self.elapsed else 0.0


class VisibilityWatch:
    """Waits for (session, version) pairs to be projected; records scheduled -> visible."""

    def __init__(self, dsn: str, projector_group: str, tenant: str, out: Latencies) -> None:
        self._dsn, self._group, self._tenant, self._out = dsn, projector_group, tenant, out
        self._pending: dict[str, deque[tuple[int, float, float]]] = defaultdict(deque)
        self._wake = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None
        self.backend_pid = 0

    async def __aenter__(self) -> VisibilityWatch:
        self._conn = await asyncpg.connect(self._dsn)
        self.backend_pid = self._conn.get_server_pid()
        await self._conn.add_listener(PROJECTED, lambda *_: self._wake.set())
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._task is not None and self._conn is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._conn.close()

    def expect(self, session_id: str, version: int, scheduled: float, accepted: float) -> None:
        # no wake-up here: the projector's NOTIFY (or the poll) triggers the next read
        self._pending[session_id].append((version, scheduled, accepted))

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._pending.values())

    async def _run(self) -> None:
        assert self._conn is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            self._wake.clear()
            if not self._pending:
                continue
            rows = await self._conn.fetch(VERSIONS, self._group, self._tenant, list(self._pending))
            seen = time.perf_counter()
            for row in rows:
                queue = self._pending[row["session_id"]]
                while queue and queue[0][0] <= row["version"]:
                    version, scheduled, accepted = queue.popleft()
                    self._out.visible.append(seen - scheduled)
                    self._out.visible_due.append(scheduled)
                    self._out.visible_keys.append((row["session_id"], version))
                    self._out.after_accept.append(seen - accepted)
                if not queue:
                    del self._pending[row["session_id"]]


# A command: (its number, its session's index, its due time (perf_counter)).
Job = tuple[int, int, float]


class _Schedule:
    """An open loop's due times: command n is due at start + n / rate. `pump()` sends every command
    due by now; it runs on every answer (a wake-up the loop pays anyway) and on a timer armed
    SLACK_S after the next due time, pushed back whenever an answer's wake-up sent it first. So a
    command goes out at most ~SLACK_S after its due time (never before), and at a few hundred
    commands/s most go out on an answer's wake-up instead of one of their own."""

    def __init__(self, owner: LoadGenerator, rate: float, total: int) -> None:
        self._owner, self._interval, self._total = owner, 1 / rate, total
        self._loop = asyncio.get_running_loop()
        self._start = time.perf_counter() + 0.005
        self._n = 0
        self._timer: asyncio.TimerHandle | None = None
        self.finished: asyncio.Future[None] = self._loop.create_future()

    def due(self, n: int) -> float:
        return self._start + n * self._interval

    def arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = self.due(self._n) - time.perf_counter()
        self._timer = self._loop.call_later(max(delay, 0.0) + SLACK_S, self._tick)

    def pump(self) -> None:
        now, n = time.perf_counter(), self._n
        due = self.due(n)
        if due > now or n >= self._total:
            return
        while n < self._total and due <= now:
            self._owner.dispatch((n, n % len(self._owner.requests), due))
            n += 1
            due = self.due(n)
        self._n = n
        if n < self._total:
            self.arm()
        elif not self.finished.done():
            if self._timer is not None:
                self._timer.cancel()
            self.finished.set_result(None)

    def _tick(self) -> None:
        self._timer = None
        self.pump()
        if self._timer is None and self._n < self._total:  # fired before anything was due
            self.arm()


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request in flight at a time."""

    def __init__(self, owner: LoadGenerator) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.job: Job | None = None
        self.idle_since = 0.0  # time.perf_counter() when it last became idle
        self.expired = False  # closed by the generator for idling too long: nothing to replace

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport subclass

    def send(self, job: Job) -> None:
        assert self.transport is not None
        self.job = job
        self.transport.write(self.owner.requests[job[1]])

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buffer = buf
            return
        head = buf[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.owner.failed(self, f"answer without Content-Length: {head[:200]!r}")
            return
        line_end = head.find(b"\r\n", at + 2)
        total = end + 4 + int(head[at + 17 : line_end if line_end >= 0 else len(head)])
        if len(buf) < total:
            self.buffer = buf
            return
        self.buffer = buf[total:]
        job, self.job = self.job, None
        if job is not None:
            self.owner.answered(self, job, int(head[9:12]), buf[end + 4 : total])

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost(self, exc)


class LoadGenerator:
    """POST /v1/sessions/{id}/messages round-robin over `sessions` (a session gets its next command
    only after the whole rotation), open or closed loop; see the module's invariants."""

    def __init__(self, port: int, key: str, body: dict, sessions: list[str], *, max_connections: int = 64) -> None:
        payload = orjson.dumps(body)
        head = (
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        self.requests = [b"POST /v1/sessions/%s/messages HTTP/1.1\r\n" % s.encode() + head + payload for s in sessions]
        self.sessions, self._port, self._max = sessions, port, max_connections
        self.out = Latencies()  # the current phase's
        self.watch: VisibilityWatch | None = None
        self._idle: list[_Connection] = []
        self._open = 0  # connections open or being opened
        self._queue: deque[Job] = deque()  # due commands waiting for a connection
        self._outstanding = 0  # sent or queued, not answered yet
        self._drained: asyncio.Event | None = None
        self._measure_from = 0  # jobs numbered below this are the warm-up
        self._window = (0.0, 0.0)
        self._closed_until = 0.0  # closed loop: answers before this time send the next command
        self._schedule: _Schedule | None = None  # open loop: the due times
        self._next = 0
        self.closed_answers = 0

    async def open_loop(
        self, out: Latencies, rate: float, seconds: float, warmup: float, watch: VisibilityWatch | None
    ) -> None:
        """`rate` commands/s for `warmup` + `seconds`; the last `seconds` are measured into `out`.
        Returns when every answer arrived (or DRAIN_S after the last send)."""
        self.out = out
        total = int(rate * (warmup + seconds))
        self.watch, self._measure_from = watch, int(rate * warmup)
        self._drained = asyncio.Event()
        self._schedule = schedule = _Schedule(self, rate, total)
        self._window = (schedule.due(self._measure_from), schedule.due(total))
        self.out.elapsed, self.out.target_rate = self._window[1] - self._window[0], rate
        schedule.arm()
        await schedule.finished
        self._schedule = None
        self.out.sent = total
        await self._drain(DRAIN_S)
        self.watch = None

    async def closed_loop(self, out: Latencies, connections: int, seconds: float) -> float:
        """`connections` connections, each sending its next command on the last one's answer, for
        `seconds`; returns the 2xx answers per second (errors go to `out.errors`)."""
        self.out = out
        self._measure_from = 1 << 62  # nothing here is a measured open-loop command
        self._drained = asyncio.Event()
        for _ in range(connections - len(self._idle)):
            await self._connect()
        started, first = time.perf_counter(), self._next
        self._closed_until, self.closed_answers = started + seconds, 0
        for _ in range(connections):
            self._send_next_closed()
        await asyncio.sleep(seconds)
        await self._drain(DRAIN_S)
        self._closed_until = 0.0
        self.out.elapsed, self.out.answered_in_window, self.out.sent = seconds, self.closed_answers, self._next - first
        return self.closed_answers / seconds

    async def _drain(self, timeout: float) -> None:
        """Wait until every command sent was answered (or failed), at most `timeout` seconds."""
        assert self._drained is not None
        if self._outstanding:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout)

    def close(self) -> None:
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()

    # --- dispatching -------------------------------------------------------------------------

    def _send_next_closed(self) -> None:
        job = (self._next, self._next % len(self.requests), time.perf_counter())
        self._next += 1
        self.dispatch(job)

    def dispatch(self, job: Job) -> None:
        self._outstanding += 1
        conn = self._take_idle()
        if conn is not None:
            if job[0] >= self._measure_from:
                self.out.send_lag.append(time.perf_counter() - job[2])
            conn.send(job)
            return
        self._queue.append(job)
        if self._open < self._max:
            self._open += 1
            asyncio.get_running_loop().create_task(self._connect(counted=True))

    def _take_idle(self) -> _Connection | None:
        """The most recently used idle connection; ones idle for IDLE_EXPIRY_S are closed instead."""
        now = time.perf_counter()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < IDLE_EXPIRY_S:
                return conn
            conn.expired = True
            if conn.transport is not None:
                conn.transport.close()  # connection_lost counts it closed: no command was on it
        return None

    def _park(self, conn: _Connection) -> None:
        conn.idle_since = time.perf_counter()
        self._idle.append(conn)

    async def _connect(self, counted: bool = False) -> None:
        if not counted:
            self._open += 1
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Connection(self), "127.0.0.1", self._port)
        except OSError as exc:
            self._open -= 1
            self.out.errors.append(f"connect: {exc!r}")
            if self._queue and not self._idle and self._open == 0:  # nothing will ever send them
                self._fail_queue(f"connect: {exc!r}")
            return
        self._ready(conn)

    def _ready(self, conn: _Connection) -> None:
        """An idle connection: give it the next waiting command, or keep it."""
        if self._queue:
            job = self._queue.popleft()
            if job[0] >= self._measure_from:
                self.out.send_lag.append(time.perf_counter() - job[2])
            conn.send(job)
        else:
            self._park(conn)

    # --- answers -----------------------------------------------------------------------------

    def answered(self, conn: _Connection, job: Job, status: int, body: bytes) -> None:
        now = time.perf_counter()
        n, session, due = job
        if not 200 <= status < 300:
            self.out.errors.append(f"HTTP {status}: {body[:200]!r}")
        elif self._closed_until:
            if now <= self._closed_until:
                self.closed_answers += 1
        elif n >= self._measure_from:
            self.out.accepted.append(now - due)
            self.out.accepted_due.append(due)
            if self._window[0] <= now <= self._window[1]:
                self.out.answered_in_window += 1
            if self.watch is not None:
                self.watch.expect(self.sessions[session], orjson.loads(body)["version"], due, now)
        self._done_one()
        if self._closed_until and now < self._closed_until:
            self._park(conn)
            self._send_next_closed()
        else:
            self._ready(conn)
            if self._schedule is not None:
                self._schedule.pump()  # this wake-up sends what fell due meanwhile

    def failed(self, conn: _Connection, reason: str) -> None:
        self.out.errors.append(reason)
        if conn.transport is not None:
            conn.transport.close()  # connection_lost accounts for its command

    def lost(self, conn: _Connection, exc: Exception | None) -> None:
        self._open -= 1
        if conn.expired:
            return  # the command that found it stale opened its own connection
        if conn in self._idle:
            self._idle.remove(conn)
        if conn.job is not None:
            self.out.errors.append(f"connection lost mid-exchange: {exc!r}")
            conn.job = None
            self._done_one()
        if self._queue and self._open < self._max:
            self._open += 1
            asyncio.get_running_loop().create_task(self._connect(counted=True))

    def _fail_queue(self, reason: str) -> None:
        while self._queue:
            self._queue.popleft()
            self.out.errors.append(reason)
            self._done_one()

    def _done_one(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0 and self._drained is not None:
            self._drained.set()
