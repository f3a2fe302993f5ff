"""HTTP load for the command API benchmark: the server in a subprocess, and two load generators.

Invariant: the server is started through `commands.api.app.serve` (the deployment path, settings
from AGENTLOG_* variables) and always stopped; every load phase is bounded in time and sends
traffic to 127.0.0.1 only. wrk (C, one thread) is the primary generator because on a 2-core
machine a Python client takes much of the CPU the server and Postgres need; httpx is the fallback
when wrk is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from tests.factories import free_port

WRK_SCRIPT = Path(__file__).with_name("wrk_messages.lua")
WRK_MISSING = (
    "wrk is not installed: the HTTP figures fall back to the httpx client, which "
    "shares the CPU with the server. Install it with `apt-get install -y wrk` "
    "(Debian/Ubuntu) for the primary figures."
)
MESSAGE = {"role": "assistant", "content": "x" * 200, "agent": "bench"}


@dataclass(frozen=True)
class LoadResult:
    rate: float  # successful requests per second
    p50_ms: float
    p99_ms: float
    failed: int  # non-2xx answers and socket errors
    generator_cpu_s: float = 0.0  # CPU seconds of the load generator (wrk) itself


def server_stack() -> str:
    """What uvicorn picks with loop/http "auto": uvloop and httptools when they are installed."""
    names = [("uvloop", "asyncio loop"), ("httptools", "h11")]
    return " + ".join(fast if importlib.util.find_spec(fast) else slow for fast, slow in names)


def wrk_path() -> str | None:
    return shutil.which("wrk")


class ApiServer:
    """`async with ApiServer(dsn, workers=n) as server:` a command API on server.url."""

    def __init__(
        self, dsn: str, *, workers: int = 1, pool_size: int | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {
            **os.environ,
            "AGENTLOG_DATABASE_URL": dsn,
            "AGENTLOG_LOG_LEVEL": "WARNING",
            "AGENTLOG_COMMANDS_PORT": str(self.port),
            "AGENTLOG_COMMANDS_WORKERS": str(workers),
            **({"AGENTLOG_COMMANDS_POOL_SIZE": str(pool_size)} if pool_size is not None else {}),  # else the default
            **(env or {}),
        }
        self._process: subprocess.Popen | None = None

    async def __aenter__(self) -> ApiServer:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "agentlog", "serve", "commands"],
            env=self._env,  # as users start it
        )
        try:
            await self._wait_ready()
        except BaseException:
            self._stop()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        self._stop()

    @property
    def pid(self) -> int:
        """The server process (with one worker it serves in that process itself)."""
        assert self._process is not None
        return self._process.pid

    def _stop(self) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(timeout=20)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise RuntimeError("the command API exited")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("the command API did not get ready in 30 s")


async def start_sessions(url: str, key: str, ids: list[str]) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        for session_id in ids:
            (await client.post("/v1/sessions", json={"session_id": session_id})).raise_for_status()


async def wrk_messages(url: str, key: str, prefix: str, ring: int, *, connections: int, seconds: float) -> LoadResult:
    """POST /messages from wrk (1 thread, `connections` keep-alive connections) over a ring of
    sessions <prefix>-0 .. <prefix>-<ring-1> that must exist."""
    before = _children_cpu()
    out = await _run_wrk(
        ["-s", str(WRK_SCRIPT), url, "--", key, prefix, str(ring)], connections=connections, seconds=seconds
    )
    cpu = _children_cpu() - before  # wrk's, if no other child of this process ended meanwhile
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_RESULT "))
    r = orjson.loads(line.removeprefix("WRK_RESULT "))
    failed = r["non_2xx"] + r["socket_errors"]
    return LoadResult(
        (r["requests"] - failed) / (r["duration_us"] / 1e6), r["p50_us"] / 1000, r["p99_us"] / 1000, failed, cpu
    )


def _children_cpu() -> float:
    """utime + stime of this process's children that ended and were waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def wrk_get(url: str, *, connections: int, seconds: float) -> float:
    """Requests/s of a plain GET (the HTTP stack's own ceiling)."""
    out = await _run_wrk([url], connections=connections, seconds=seconds)
    return number(r"Requests/sec:\s*([\d.]+)", out)


def number(pattern: str, text: str) -> float:
    """The number `pattern`'s first group finds in a tool's output; a clear error if it is not there."""
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"no {pattern!r} in the output:\n{text[-2000:]}")
    return float(found.group(1))


async def _run_wrk(args: list[str], *, connections: int, seconds: float) -> str:
    proc = await asyncio.create_subprocess_exec(
        wrk_path() or "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {text}")
    return text


async def httpx_messages(
    url: str, key: str, session_ids: list[str], *, seconds: float, timed_writers
) -> tuple[LoadResult, float]:
    """The Python fallback: one httpx client per session id, then GET /healthz the same way.
    Returns the messages result and the /healthz ceiling (req/s)."""
    limits = httpx.Limits(max_connections=len(session_ids), max_keepalive_connections=len(session_ids))
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as client:

        async def work(writer: int, n: int) -> None:
            r = await client.post(f"/v1/sessions/{session_ids[writer]}/messages", json=MESSAGE)
            r.raise_for_status()

        async def ping(writer: int, n: int) -> None:
            (await client.get("/healthz")).raise_for_status()

        rate, latencies = await timed_writers(work)
        ceiling, _ = await timed_writers(ping)
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    return LoadResult(rate, p50 * 1000, p99 * 1000, 0), ceiling
