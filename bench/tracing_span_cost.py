"""What tracing's spans cost a command, without a server around them: the command path's two spans
(the server span, current, and the append span inside it, with their attributes), N times, exported
over OTLP/HTTP to a receiver in the parent, in a fresh process per run. Two exporters, alternated:
  sdk    the SDK's BatchSpanProcessor + OTLPSpanExporter in the serving process (main before the
         exporter process) with start_as_current_span, as agentlog/telemetry/http.py had it;
  agentlog  agentlog/telemetry/export.py's ExportProcess (rows down a pipe to the exporter process),
         the server span as agentlog/telemetry/http.py starts it, the append span as spans.append_span
         writes it.
Prints the serving process's CPU per command (all its threads, the calling thread apart) and its
child processes'. CPU time, not throughput: the figure a shared machine blurs least.
Run: `python -m bench.tracing_span_cost [--commands N] [--rounds R]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import Attributes

ROUTE = "/v1/sessions/{session_id}/messages"


def _processor(mode: str, service: Resource) -> SpanProcessor:
    if mode == "sdk":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        return BatchSpanProcessor(OTLPSpanExporter(), max_queue_size=100_000)
    from agentlog.telemetry import export

    export.PROCESS = export.ExportProcess(service, {"OTEL_BSP_MAX_QUEUE_SIZE": "100000"})
    return export.PROCESS


def measure(mode: str, commands: int) -> str:
    service = Resource.create({"service.name": "agentlog-commands"})
    provider = TracerProvider(resource=service, shutdown_on_exit=False)
    provider.add_span_processor(_processor(mode, service))
    http, app = provider.get_tracer("agentlog.http"), provider.get_tracer("agentlog")

    def append() -> None:
        attributes: Attributes = {
            "db.operation.name": "agentlog_append",
            "agentlog.session_id": "s-1",
            "agentlog.events": 1,
        }
        span = app.start_span("append", kind=SpanKind.CLIENT, attributes=attributes)
        ids = span.get_span_context()
        _ = f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{int(ids.trace_flags):02x}"
        span.end()

    def before() -> None:
        with http.start_as_current_span(
            "POST",
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "POST", "url.path": "/v1/sessions/s-1/messages"},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            append()
            span.update_name(f"POST {ROUTE}")
            span.set_attribute("http.route", ROUTE)
            span.set_attribute("http.response.status_code", 200)

    def now() -> None:
        from agentlog.telemetry.spans import append_span

        span = http.start_span("POST", kind=SpanKind.SERVER)
        token = context.attach(trace.set_span_in_context(span))
        try:
            with append_span("s-1", 1):  # written as a row under the request span
                pass
        finally:
            context.detach(token)
            span.update_name(f"POST {ROUTE}")
            span.set_attributes(
                {"http.request.method": "POST", "url.path": "/v1/sessions/s-1/messages", "http.route": ROUTE}
                | {"http.response.status_code": 200}
            )
            span.end()

    command = before if mode == "sdk" else now
    started, calling = time.process_time(), time.thread_time()
    for i in range(commands):
        command()
        if i % 1000 == 999:
            time.sleep(0.001)  # a breath between bursts, as a server has
    calling = time.thread_time() - calling
    provider.force_flush()
    provider.shutdown()
    total = time.process_time() - started
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    per = 1e6 / commands
    return (
        f"{mode:8s}: serving process {total * per:4.0f} µs/command (calling thread {calling * per:3.0f}), "
        f"child processes {(child.ru_utime + child.ru_stime) * per:3.0f} µs/command"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing_span_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "ENDPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = args.one[1]
        print(measure(args.one[0], args.commands), flush=True)
        return 0
    from tests.otlp_receiver import OtlpReceiver

    with OtlpReceiver(keep=False) as receiver:
        for _ in range(args.rounds):
            for mode in ("sdk", "agentlog"):
                one = [sys.executable, "-m", "bench.tracing_span_cost", "--commands", str(args.commands)]
                subprocess.run([*one, "--one", mode, receiver.endpoint], check=True)
        print(f"receiver: {receiver.received} spans ({2 * args.commands * args.rounds * 2} sent)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
