"""agentlog's own spans, where no instrumentation fits: the relay's publish, the projector's apply
and the model calls a session recorded (GenAI semantic conventions).

Invariant: one trace runs from a command to the read model. The relay and the projector work in
batches that mix traces, so each opens, per batch, one span per trace in the batch (a child of
the context its rows carry: the outbox row's traceparent for the relay, the record header for the
projector) and the projector's batch span, which its database queries nest under, links to them.
Imported only when tracing is on.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import orjson
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

from agentlog.telemetry import TRACING, export
from eventstore.events import ModelCallRecorded

_tracer = trace.get_tracer("agentlog")
_SCOPE = ("agentlog", None, None)  # _tracer's instrumentation scope (name, version, schema_url), as a row has it
_random = random.Random()
TRACEPARENT = "traceparent"


def _context_of(traceparent: str) -> Any:
    return propagate.extract({TRACEPARENT: traceparent})


def append_span(session_id: str, events: int) -> AbstractContextManager[str | None]:
    """The command API's span around one append; yields its traceparent for the outbox rows.
    Not made current (nothing runs inside it that would nest). Under a sampled request span and
    with the OTLP exporter process, written straight as a row (`_append_row`): the SDK's span
    objects cost some 15 µs a command more (docs/observability.md, what tracing costs)."""
    parent = trace.get_current_span()
    rows = export.PROCESS
    if rows is not None and parent.is_recording() and parent.get_span_context().trace_flags.sampled:
        return _append_row(rows, parent.get_span_context(), session_id, events)
    return _append_sdk_span(session_id, events)


@contextmanager
def _append_row(rows: export.ExportProcess, parent: SpanContext, session_id: str, events: int) -> Iterator[str]:
    """The append span as export.row would write it, a child of the (sampled) request span: the
    same sampling decision as every built-in sampler takes for a child of a sampled local parent."""
    span_id = _random.getrandbits(64) or 1
    flags = int(parent.trace_flags)  # a child's are its parent's (sampled, and the SDK's random-id bit)
    start = time.time_ns()
    code, description = StatusCode.UNSET, None
    try:
        yield f"00-{parent.trace_id:032x}-{span_id:016x}-{flags:02x}"
    except BaseException as exc:
        code, description = StatusCode.ERROR, type(exc).__name__
        raise
    finally:
        attributes = {
            "db.operation.name": "agentlog_append",
            "agentlog.session_id": session_id,
            "agentlog.events": events,
        }
        state = parent.trace_state.to_header() if parent.trace_state else ""
        rows.add(
            (
                "append",
                parent.trace_id,
                span_id,
                flags,
                state,
                parent.span_id,
                False,
                SpanKind.CLIENT.value,
                start,
                time.time_ns(),
                attributes,
                code.value,
                description,
                _SCOPE,
                [],
                [],
            )
        )


@contextmanager
def _append_sdk_span(session_id: str, events: int) -> Iterator[str | None]:
    span = _tracer.start_span(
        "append",
        kind=SpanKind.CLIENT,
        attributes={
            "db.operation.name": "agentlog_append",
            "agentlog.session_id": session_id,
            "agentlog.events": events,
        },
    )
    try:
        yield _traceparent(span)
    except BaseException as exc:
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()


def _traceparent(span: Span) -> str:
    """W3C traceparent of `span`, formatted directly (propagate.inject goes through every propagator)."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


class PublishSpans:
    """The relay's spans of one batch: one PRODUCER span per trace among its rows, ended when Kafka
    acknowledged the batch (or it failed); `header` gives the traceparent a record carries on."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._spans: dict[str, tuple[Span, bytes, list[int]]] = {}

    def header(self, stored: str, position: int) -> bytes:
        entry = self._spans.get(stored)
        if entry is None:
            span = _tracer.start_span(
                f"send {self._topic}",
                context=_context_of(stored),
                kind=SpanKind.PRODUCER,
                attributes={"messaging.system": "kafka", "messaging.destination.name": self._topic},
            )
            entry = self._spans[stored] = (span, _traceparent(span).encode(), [])
        entry[2].append(position)
        return entry[1]

    def end(self, error: BaseException | None = None) -> None:
        for span, _, positions in self._spans.values():
            span.set_attribute("messaging.batch.message_count", len(positions))
            span.set_attribute("agentlog.positions", positions[:64])
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end()
        self._spans.clear()


def _header(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    for name, value in headers or ():
        if name == TRACEPARENT:
            return value.decode(errors="replace")
    return None


@contextmanager
def applying(records: Iterable[Any], group: str) -> Iterator[Span]:
    """The projector's spans of one batch of Kafka records: a batch span (current, so the apply's
    queries nest under it) linking one CONSUMER span per trace among the records, each a child of
    the context the record header carries. All end when the batch committed or failed."""
    by_trace: dict[str, list[Any]] = {}
    for record in records:
        parent = _header(record.headers)
        if parent is not None:
            by_trace.setdefault(parent, []).append(record)
    started = time.time_ns()
    per_trace = [
        _tracer.start_span(
            f"process {recs[0].topic}",
            context=_context_of(parent),
            kind=SpanKind.CONSUMER,
            start_time=started,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": group,
                "messaging.batch.message_count": len(recs),
            },
        )
        for parent, recs in by_trace.items()
    ]
    links = [Link(span.get_span_context()) for span in per_trace if span.is_recording()]
    error: BaseException | None = None
    with _tracer.start_as_current_span(
        "projector apply", links=links, start_time=started, attributes={"messaging.consumer.group.name": group}
    ) as batch:
        try:
            yield batch
        except BaseException as exc:
            error = exc
            raise
        finally:
            for span in per_trace:
                if error is not None:
                    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                span.end()


def model_call_spans(events: Iterable[Any], session_id: str, recorded_ns: int) -> None:
    """A `chat {model}` span (GenAI semantic conventions) per ModelCallRecorded among `events`,
    a child of the current (request) span, ending when the call was recorded and lasting its
    latency. Message content only with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true."""
    for event in events:
        if isinstance(event, ModelCallRecorded):
            _model_call_span(event, session_id, recorded_ns)


def _model_call_span(event: ModelCallRecorded, session_id: str, recorded_ns: int) -> None:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.conversation.id": session_id,
        "gen_ai.request.model": event.model,
        "gen_ai.response.id": event.call_id,
    }
    if event.provider:
        attributes["gen_ai.provider.name"] = event.provider
    if event.agent:
        attributes["gen_ai.agent.name"] = event.agent
    if event.usage.input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = event.usage.input_tokens
    if event.usage.output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = event.usage.output_tokens
    if event.response.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = [event.response.finish_reason]
    for name in ("temperature", "max_tokens", "top_p"):
        value = event.request.parameters.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[f"gen_ai.request.{name}"] = value
    if TRACING.capture_content:
        attributes.update(_content(event))
    start = recorded_ns - (event.latency_ms or 0) * 1_000_000
    span = _tracer.start_span(f"chat {event.model}", kind=SpanKind.CLIENT, start_time=start, attributes=attributes)
    if event.response.error:
        span.set_status(Status(StatusCode.ERROR, event.response.error[:200]))
        span.set_attribute("error.type", "model_error")
    span.end(end_time=recorded_ns)


def _content(event: ModelCallRecorded) -> dict[str, str]:
    """The opt-in attributes: messages as the session recorded them (references to earlier
    messages stay references), the system prompt and the answer, as JSON strings."""
    out = {"gen_ai.input.messages": orjson.dumps(event.request.messages).decode()}
    if event.request.system is not None:
        out["gen_ai.system_instructions"] = orjson.dumps(event.request.system).decode()
    output: dict[str, Any] = {"role": "assistant", "content": event.response.content}
    if event.response.tool_calls:
        output["tool_calls"] = event.response.tool_calls
    out["gen_ai.output.messages"] = orjson.dumps([output]).decode()
    return out


def as_ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)
