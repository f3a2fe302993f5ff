"""The span processor of a traced process: finished spans go, as plain tuples, to an exporter child
process (agentlog/telemetry/exporter_process.py) that encodes them for OTLP and sends them.

Why not the SDK's BatchSpanProcessor: its exporter thread encodes (protobuf) and sends in the serving
process, and on the command API that thread's time and its fights for the GIL with the event loop
cost more than the spans themselves (docs/observability.md, what tracing costs). Here the serving
process pickles a span's fields (a few µs) and, once per batch, writes them down a pipe; encoding,
HTTP, retries and the exporter's OTEL_EXPORTER_OTLP_* settings all live in the child.

Invariants: bounded like the batch processor (OTEL_BSP_MAX_QUEUE_SIZE spans waiting, more are
dropped and counted); a batch leaves when OTEL_BSP_MAX_EXPORT_BATCH_SIZE spans wait or after
OTEL_BSP_SCHEDULE_DELAY ms; `force_flush` returns once the child exported everything ended before
it; `shutdown` (the tracer provider's, at exit) sends what is left, closes the pipe and waits for the
child, which exports the rest and exits. A child that died loses what it held and the spans after;
the serving process goes on untraced (logged once).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import IO, Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

log = logging.getLogger(__name__)

THREAD = "agentlog-span-export"
PROCESS: ExportProcess | None = None  # this process's, once tracing exports over OTLP
Row = tuple[Any, ...]


def _ms(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name) or default)
    except ValueError:
        return default


def row(span: ReadableSpan) -> Row:
    """What the child needs to encode the span (otlp_proto.encode; exporter_process.span rebuilds it)."""
    context, parent, status, scope = span.context, span.parent, span.status, span.instrumentation_scope
    return (
        span.name,
        context.trace_id,
        context.span_id,
        int(context.trace_flags),
        context.trace_state.to_header() if context.trace_state else "",
        parent.span_id if parent is not None else 0,
        parent is not None and parent.is_remote,
        span.kind.value,
        span.start_time,
        span.end_time,
        dict(span.attributes or ()),
        status.status_code.value,
        status.description,
        (scope.name, scope.version, scope.schema_url) if scope is not None else ("", None, ""),
        [(e.name, e.timestamp, dict(e.attributes or ())) for e in span.events],
        [
            (link.context.trace_id, link.context.span_id, link.context.is_remote, dict(link.attributes or ()))
            for link in span.links
        ],
    )


class ExportProcess(SpanProcessor):
    """Installed once per process (sdk.install), which sets PROCESS to it."""

    def __init__(self, resource: Resource, env: Mapping[str, str]) -> None:
        self._batch = max(1, _ms(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512))
        self._capacity = max(self._batch, _ms(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048))
        self._delay_s = _ms(env, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self._rows: list[bytes] = []  # pickled rows
        self._dropped = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._flushes = itertools.count(1)
        self._flush_wanted: list[tuple[int, threading.Event]] = []
        self._acked: dict[int, threading.Event] = {}
        self._closing = False
        self._child = subprocess.Popen(
            [sys.executable, "-m", "agentlog.telemetry.exporter_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, **env},
        )
        assert self._child.stdin is not None and self._child.stdout is not None
        self._pipe: IO[bytes] | None = self._child.stdin
        self._send(("resource", dict(resource.attributes), resource.schema_url))
        self._writer = threading.Thread(target=self._write_loop, name=THREAD, daemon=True)
        self._reader = threading.Thread(target=self._read_acks, args=(self._child.stdout,), daemon=True)
        self._writer.start()
        self._reader.start()

    @property
    def child_pid(self) -> int:
        return self._child.pid

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.context.trace_flags.sampled:
            self.add(row(span))

    def add(self, finished: Row) -> None:
        """A finished span as `row` writes it (also the append spans spans.append_span writes itself)."""
        # pickled now: one bytes object, which the garbage collector does not track, waits in the
        # queue instead of a tuple of dicts and lists that would age into its oldest generation
        entry = pickle.dumps(finished, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if len(self._rows) >= self._capacity:
                self._dropped += 1
                return
            self._rows.append(entry)
            if len(self._rows) == self._batch:
                self._wake.notify()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        done = threading.Event()
        with self._lock:
            if self._pipe is None:
                return False
            self._flush_wanted.append((next(self._flushes), done))
            self._wake.notify()
        return done.wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._wake.notify()
        self._writer.join(timeout=30)
        try:
            self._child.wait(timeout=_ms(os.environ, "OTEL_BSP_EXPORT_TIMEOUT", 30000) / 1000 + 5)
        except subprocess.TimeoutExpired:
            log.warning("span exporter process did not finish in time; killed (spans it held are lost)")
            self._child.kill()
            self._child.wait()

    def _write_loop(self) -> None:
        closing = False
        while not closing:
            with self._lock:
                if not (self._closing or self._flush_wanted or len(self._rows) >= self._batch):
                    self._wake.wait(self._delay_s)
                rows, self._rows = self._rows, []
                flushes, self._flush_wanted = self._flush_wanted, []
                dropped, self._dropped = self._dropped, 0
                closing = self._closing
            if dropped:
                log.warning("span queue full: %d spans dropped (OTEL_BSP_MAX_QUEUE_SIZE)", dropped)
            for start in range(0, len(rows), self._batch):
                self._send(("spans", rows[start : start + self._batch]))
            for token, done in flushes:
                self._acked[token] = done
                self._send(("flush", token))
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()  # end of input: the child exports what it holds and exits

    def _send(self, message: tuple[Any, ...]) -> None:
        if self._pipe is None:
            return
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._pipe.write(len(data).to_bytes(4, "big") + data)
            self._pipe.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            log.error("span exporter process is gone (%s): tracing exports nothing more", exc)
            self._pipe = None

    def _read_acks(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            done = self._acked.pop(int(line), None)
            if done is not None:
                done.set()
