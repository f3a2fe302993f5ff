"""The command API's HTTP layer without the database: CPU per request of the real app (edge
middleware, routing, validation, the lean write handler) over ASGI in one process, with a runner
stub that answers at once, against FastAPI's own handler for the same routes (the limit this
path is compared with) and GET /healthz through the same stack, in one run.

Each mode runs in its own process (the route handlers are built at import), three rounds
interleaved; CPU is time.process_time() over 4,000 `POST /v1/sessions/{id}/messages`. Run from the
project root: `python -m bench.bench_http_layer` (no database, no network; about 20 s).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

import orjson
import uvloop

BODY = orjson.dumps({"role": "assistant", "content": "x" * 200, "agent": "bench"})
N = 4000
MODES = ("lean", "fastapi", "healthz")


class _Verifier:
    async def verify(self, header: str | None) -> Any:
        from agentlog.edge.keys import Principal

        return Principal("k1", "t1", "writer")


class _Runner:
    async def run(self, request: Any, name: str, session_id: str, commands: Any, *, success_status: int = 200) -> Any:
        from agentlog.edge.responses import FastJSONResponse

        body = {"session_id": session_id, "version": 2, "position": 7, "event_ids": []}
        return FastJSONResponse(body, status_code=success_status, headers={"ETag": '"2"'})


async def _drive(app: Any, n: int, method: str, path: str, body: bytes) -> None:
    headers = [(b"host", b"bench"), (b"authorization", b"Bearer k"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
        "headers": headers,
    }
    statuses: set[int] = set()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    def receiver() -> Any:
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        return receive

    for _ in range(n):
        await app(dict(scope, state={}), receiver(), send)
    if statuses != {200}:
        raise RuntimeError(f"unexpected answers: {statuses}")


async def _measure(mode: str) -> float:
    if mode == "fastapi":  # before any route is built: every write keeps FastAPI's handler
        from commands.api import lean

        lean.lean_handler = lambda route, fallback: fallback
    from commands.api.app import create_app
    from commands.api.settings import CommandsSettings
    from eventstore.settings import Settings

    app = create_app(CommandsSettings(), shared=Settings())
    app.state.verifier, app.state.runner = _Verifier(), _Runner()
    method, path, body = ("GET", "/healthz", b"") if mode == "healthz" else ("POST", "/v1/sessions/s-1/messages", BODY)
    await _drive(app, 300, method, path, body)
    started = time.process_time()
    await _drive(app, N, method, path, body)
    return (time.process_time() - started) / N * 1e6


def main() -> None:
    if len(sys.argv) > 1:
        print(uvloop.run(_measure(sys.argv[1])))
        return
    figures: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(3):
        for mode in MODES:
            out = subprocess.run(
                [sys.executable, "-m", "bench.bench_http_layer", mode], capture_output=True, check=True
            )
            figures[mode].append(float(out.stdout))
    medians = {mode: statistics.median(xs) for mode, xs in figures.items()}
    for mode, xs in figures.items():
        print(f"{mode:8s}: median {medians[mode]:6.1f} us CPU/request  ({', '.join(f'{x:.1f}' for x in xs)})")
    print(
        f"lean / FastAPI handler: {medians['lean'] / medians['fastapi']:.2f}; "
        f"GET /healthz (FastAPI's handler, no body) / lean: {medians['healthz'] / medians['lean']:.2f}"
    )


if __name__ == "__main__":
    main()
