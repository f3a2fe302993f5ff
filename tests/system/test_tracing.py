"""OpenTelemetry across the four processes, exported to a small OTLP/HTTP receiver in the test:
one command carrying the caller's traceparent yields spans of the command API, the relay and the
projector in the caller's trace, parented in pipeline order (command -> append -> relay ->
projector), its model call as a `gen_ai` span, and the query API's read in the same trace. With
tracing off, a command API process loads no SDK, starts no exporter thread and adds no
middleware; with OTEL_* set, the same script finds the exporter thread (so the check can fail)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys

import asyncpg
import httpx
import pytest

from agentlog.edge import keys as auth
from tests.factories import free_port
from tests.integration.timetravel_support import USER, model_call
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan, render
from tests.system.processes import ROOT, System
from tests.waiting import wait_until

pytestmark = pytest.mark.system

# Export each span within 100 ms instead of the SDK's 5 s, so the test waits on arrivals, not on a timer.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
OTEL_OFF = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}


async def _key(dsn: str, tenant: str, role: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return await auth.create_key(conn, tenant, role, "tracing test")
    finally:
        await conn.close()


def _by_service(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    out: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        out.setdefault(span.service, []).append(span)
    return out


def _complete(spans: list[ReceivedSpan]) -> bool:
    """Every span the test asserts on has arrived: each process exports on its own schedule (the
    relay's sends once came after the projector's spans, and the test read the trace without them)."""
    names = {(s.service, s.name) for s in spans}

    def count(service: str, matches) -> int:
        return sum(1 for s in spans if s.service == service and matches(s))

    return (
        {
            ("agentlog-commands", "POST /v1/sessions"),
            ("agentlog-commands", "chat gpt-4o"),
            ("agentlog-queries", "GET /v1/sessions/{session_id}"),
        }
        <= names
        and count("agentlog-commands", lambda s: s.name == "append") >= 2
        and count("agentlog-relay", lambda s: s.kind == "producer") >= 2
        and count("agentlog-projector", lambda s: s.name.startswith("process ")) >= 2
        and count("agentlog-projector", lambda s: s.name.endswith(" receive")) >= 2
    )


async def test_tracing_one_command_yields_spans_of_every_process_in_the_callers_trace(
    fresh_database_url, kafka_bootstrap, topic, tmp_path
):
    with OtlpReceiver() as receiver:
        system = System(
            fresh_database_url,
            kafka_bootstrap,
            topic,
            tmp_path / "logs",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            AGENTLOG_RELAY_METRICS_PORT=str(free_port()),
            AGENTLOG_PROJECTOR_METRICS_PORT=str(free_port()),
            **FAST_EXPORT,
        )
        try:
            await system.start()
            key = await _key(fresh_database_url, "acme", "admin")
            trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
            headers = {"Authorization": f"Bearer {key}", "traceparent": f"00-{trace_id}-{caller}-01"}
            session = f"trace-{secrets.token_hex(4)}"
            async with httpx.AsyncClient(timeout=30) as client:
                started = await client.post(
                    f"{system.commands_url}/v1/sessions", json={"session_id": session}, headers=headers
                )
                assert started.status_code == 201, started.text
                call = model_call("m1", [USER], {"content": "Refund issued."})
                recorded = await client.post(
                    f"{system.commands_url}/v1/sessions/{session}/model-calls", json=call, headers=headers
                )
                assert recorded.status_code == 200, recorded.text
                read = await client.get(
                    f"{system.queries_url}/v1/sessions/{session}?min_version=2&wait_ms=20000", headers=headers
                )
                assert read.status_code == 200 and read.json()["version"] == 2, read.text
            spans = await wait_until(
                lambda: (spans := receiver.trace(trace_id)) and _complete(spans) and spans,
                timeout=30,
                message="the spans of every process in the caller's trace",
            )
            status = await asyncio.to_thread(_agentlog_status, system.env)
        finally:
            codes = system.close()
    assert codes == {name: 0 for name in codes}, codes
    print(f"\n{render(spans, caller=caller)}")
    services = _by_service(spans)
    assert set(services) == {"agentlog-commands", "agentlog-relay", "agentlog-projector", "agentlog-queries"}
    by_id = {s.span_id: s for s in spans}

    # The command API continues the caller's span; its append runs inside the request.
    requests = [s for s in services["agentlog-commands"] if s.kind == "server"]
    assert {s.parent_span_id for s in requests} == {caller}
    appends = [s for s in services["agentlog-commands"] if s.name == "append"]
    assert len(appends) == 2 and all(by_id[a.parent_span_id] in requests for a in appends)
    assert {a.attributes["agentlog.session_id"] for a in appends} == {session}

    # The relay continues the append's trace from the outbox row; the projector, the relay's from the record.
    sends = [s for s in services["agentlog-relay"] if s.kind == "producer"]
    assert len(sends) == 2 and all(by_id[s.parent_span_id] in appends for s in sends)
    processes = [s for s in services["agentlog-projector"] if s.name.startswith("process ")]
    assert len(processes) >= 2 and all(by_id[p.parent_span_id] in sends for p in processes)
    assert {by_id[p.parent_span_id].span_id for p in processes} == {s.span_id for s in sends}
    # the aiokafka instrumentation's receive span per record, in the same trace
    assert sum(1 for s in services["agentlog-projector"] if s.name.endswith(" receive")) >= 2

    # The model call as a GenAI span, without content (capture is off by default).
    (chat,) = [s for s in spans if s.name == "chat gpt-4o"]
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.conversation.id"] == session
    assert (chat.attributes["gen_ai.usage.input_tokens"], chat.attributes["gen_ai.usage.output_tokens"]) == (180, 20)
    assert chat.end_ns - chat.start_ns == 700_000_000
    assert not any(name.startswith("gen_ai.input") for name in chat.attributes)

    (query,) = [s for s in services["agentlog-queries"] if s.kind == "server"]
    assert query.parent_span_id == caller

    # `agentlog status` reads the per-stage histograms from the three processes' /metrics.
    print(status["text"])
    stages = status["json"]["latency"]["stages"]
    assert list(stages) == ["command", "append_to_kafka", "kafka_to_read_model", "append_to_read_model"]
    assert stages["command"]["count"] == 2 and stages["append_to_kafka"]["count"] == 2
    assert stages["kafka_to_read_model"]["count"] == stages["append_to_read_model"]["count"] == 2
    assert all(s["p50_ms"] is not None and s["p50_ms"] > 0 for s in stages.values())
    assert status["json"]["latency"]["unreachable"] == {}
    assert "latency  append_to_read_model" in status["text"]


def _agentlog_status(env: dict[str, str]) -> dict:
    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "agentlog", "status", *args], env=env, cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    return {"json": json.loads(run("--json")), "text": run()}


# A command API in a fresh interpreter: one command, then what the process holds.
_COMMAND_API_SCRIPT = """
import asyncio, json, sys, threading
import httpx
from commands.api.app import create_app
from commands.api.settings import CommandsSettings
from eventstore.settings import Settings

async def main():
    app = create_app(CommandsSettings(), shared=Settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agentlog.test") as client:
            answer = await client.post(
                "/v1/sessions", json={"session_id": sys.argv[2]}, headers={"Authorization": "Bearer " + sys.argv[1]}
            )
        print(json.dumps({
            "status": answer.status_code,
            "threads": sorted(t.name for t in threading.enumerate()),
            "sdk_loaded": "opentelemetry.sdk.trace" in sys.modules,
            "middleware": [m.cls.__name__ for m in app.user_middleware],
        }))

asyncio.run(main())
"""


def _command_api_process(env: dict[str, str], key: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _COMMAND_API_SCRIPT, key, f"off-{secrets.token_hex(4)}"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


async def test_tracing_off_starts_no_exporter_thread_and_loads_no_sdk(fresh_database_url):
    key = await _key(fresh_database_url, "acme", "writer")
    env = {**OTEL_OFF, "AGENTLOG_DATABASE_URL": fresh_database_url}
    off = await asyncio.to_thread(_command_api_process, env, key)
    assert off["status"] == 201
    assert not any(name.startswith(("OtelBatch", "agentlog-span-export")) for name in off["threads"]), off["threads"]
    assert off["sdk_loaded"] is False
    assert "ServerSpans" not in off["middleware"]

    with OtlpReceiver() as receiver:
        on_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **FAST_EXPORT}
        on = await asyncio.to_thread(_command_api_process, on_env, key)
        assert on["status"] == 201
        assert "agentlog-span-export" in on["threads"]  # the exporter process's pipe (agentlog/telemetry/export.py)
        assert on["sdk_loaded"] is True and "ServerSpans" in on["middleware"]
        await wait_until(receiver.count, timeout=15, message="the traced process's spans")
