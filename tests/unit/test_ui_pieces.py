"""The pure pieces of the session explorer and its live stream: the CSP and config of /ui, the
resume point of a stream, the SSE framing and the client's reading of it."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from agentlog.client.queries import _sse_entries
from eventstore.errors import ValidationProblemError
from projections.api.live import resume_from, sse
from projections.api.ui import content_security_policy, origin_of


def test_the_policy_allows_this_origin_and_the_command_api_only() -> None:
    policy = content_security_policy("http://127.0.0.1:8000/")
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self' http://127.0.0.1:8000"
    assert directives["frame-ancestors"] == "'none'" and directives["base-uri"] == "'none'"
    assert "unsafe" not in policy
    assert content_security_policy("").split("connect-src ")[1].startswith("'self';")


@pytest.mark.parametrize(
    ("url", "origin"),
    [("http://h:8000", "http://h:8000"), ("https://h/", "https://h"), ("", ""), ("not a url", "")],
)
def test_origin_of(url: str, origin: str) -> None:
    assert origin_of(url) == origin


def test_a_stream_resumes_after_the_parameter_else_the_last_event_id_else_from_the_start() -> None:
    assert resume_from(5, "9") == 5
    assert resume_from(None, "9") == 9
    assert resume_from(None, None) == 0 and resume_from(None, "") == 0
    for bad in ("-1", "x", "1.5", "9" * 20, str(2**63)):
        with pytest.raises(ValidationProblemError) as refused:
            resume_from(None, bad)
        assert refused.value.extra["errors"][0]["field"] == "header.last-event-id"


def test_an_entry_is_one_event_whose_id_is_its_version_and_the_client_reads_it_back() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    entries = [
        {
            "version": 7,
            "position": 70,
            "type": "MessageAdded",
            "summary": "user: a\nb <script>",
            "agent": None,
            "recorded_at": at,
        },
        {"version": 8, "position": 71, "type": "SessionCompleted", "summary": "done", "agent": "x", "recorded_at": at},
    ]
    body = b": live\nretry: 2000\n\n" + b"".join(sse(e) for e in entries) + b": keepalive\n\n"
    first = sse(entries[0]).decode()
    assert first.startswith("id: 7\nevent: timeline\ndata: {") and first.endswith("}\n\n")
    assert first.count("\n") == 4  # a newline in the content stays escaped inside the one data line
    read = _sse_entries(httpx.Response(200, content=body))
    assert [(e.version, e.summary, e.agent) for e in read] == [(7, "user: a\nb <script>", None), (8, "done", "x")]
    assert _sse_entries(httpx.Response(200, content=b": live\n\n")) == []
