"""Property: whatever the command API accepts, every projection applies (issue 9 item 2's rule).

Hypothesis generates command bodies of every shape the models describe, with the awkward values
a client can send (extreme and non-finite numbers, any unicode including NUL, deep and wide JSON,
far dates in any offset), sends each through the real command API on the real Postgres, and
applies the session's stored events with the real projection applier. Each example must end in
either a 4xx (a 422 naming a field) or events that every projection applies without parking.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from eventstore.store import EventStore
from projections.projector.applier import BatchApplier
from projections.read_models.catalog import PROJECTIONS
from tests.integration.command_api_fixtures import (  # noqa: F401  (fixtures)
    Tenant,
    command_app,
    http,
    new_session_id,
    start,
    tenant,
)

EXAMPLES = 100
GROUP = "agentlog.test.accepted-is-projected.v1"

# Clean values are drawn more often than hostile ones, so both outcomes are well exercised.
clean_numbers = st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
hostile_numbers = st.sampled_from([2**63, 2**64, 10**30, -(2**63) - 1, -(2**70)]) | st.sampled_from(
    [float("nan"), float("inf"), float("-inf")]
)
clean_texts = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=12) | st.sampled_from(
    ["\u2028", "😀", "\ufeff", "\t\r\n", "\x01", ""]
)
hostile_texts = st.sampled_from(["\x00", "a\x00b"])
texts = st.one_of(clean_texts, clean_texts, clean_texts, hostile_texts)
clean_scalars = st.none() | st.booleans() | clean_numbers | clean_texts
scalars = st.one_of(clean_scalars, clean_scalars, clean_scalars, hostile_numbers | hostile_texts)


def _json(leaves, keys):
    return st.recursive(
        leaves, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5), max_leaves=30
    )


@st.composite
def deep(draw) -> dict:
    value = draw(clean_scalars)
    for _ in range(draw(st.integers(min_value=1, max_value=70) | st.integers(min_value=60, max_value=300))):
        value = {draw(clean_texts): value} if draw(st.booleans()) else [value]
    return value if isinstance(value, dict) else {"v": value}


clean_objects = st.dictionaries(clean_texts, _json(clean_scalars, clean_texts), max_size=6)
hostile_objects = st.dictionaries(texts, _json(scalars, texts), max_size=6)
objects = st.one_of(clean_objects, clean_objects, hostile_objects, deep())
wide_and_shallow = st.one_of(_json(clean_scalars, clean_texts), _json(scalars, texts))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 31, 23, 59), timezones=offsets).map(
    datetime.isoformat
) | st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z"])
names = st.text(min_size=1, max_size=30)
steps = (
    st.none()
    | st.integers(min_value=0, max_value=2**31 + 10)
    | st.sampled_from([-1, 2**31 - 1, 2**31, 2**63, 2**64, 10**30])
)

# (path relative to the session, method, body): one strategy per command endpoint.
requests = st.one_of(
    st.builds(lambda m, t: ("", "START", {"metadata": m, "title": t}), objects, names),
    st.builds(lambda c: ("messages", "POST", {"role": "user", "content": c}), names),
    st.builds(lambda a: ("tool-calls", "POST", {"tool": "t", "arguments": a}), objects),
    st.builds(lambda n, s: ("checkpoints", "POST", {"name": n, "step": s}), names, steps),
    st.builds(lambda d, m: ("errors", "POST", {"message": m, "details": d}), objects, names),
    st.builds(
        lambda e, d: ("approvals", "POST", {"action": "act", "requested_by": "p", "expires_at": e, "details": d}),
        instants,
        objects,
    ),
    st.builds(lambda p: ("state/sec?agent=billing", "PATCH", p), objects),
    st.builds(
        lambda r: (
            "commands",
            "POST",
            {
                "commands": [
                    {"type": "add_message", "role": "user", "content": "first"},
                    {"type": "request_tool_call", "call_id": "c9", "tool": "t"},
                    {"type": "complete_tool_call", "call_id": "c9", "result": r},
                ]
            },
        ),
        wide_and_shallow,
    ),
)


async def _send(http, tenant: Tenant, sid: str, path: str, method: str, body) -> int:
    headers = {**tenant.writer, "Content-Type": "application/json"}
    content = json.dumps(body)  # allow_nan: NaN and Infinity go out as a hostile client sends them
    if method == "START":
        response = await http.post(
            "/v1/sessions", headers=headers, content=json.dumps({"session_id": sid, "agents": ["billing"], **body})
        )
    else:
        assert (
            await http.post("/v1/sessions", json={"session_id": sid, "agents": ["billing"]}, headers=tenant.writer)
        ).status_code == 201
        response = await http.request(method, f"/v1/sessions/{sid}/{path}", headers=headers, content=content)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        problem = response.json()
        if response.status_code == 422:
            assert problem["code"] == "invalid_input" and problem["errors"], problem
            assert all(e["field"] and e["reason"] for e in problem["errors"]), problem
    return response.status_code


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests)
async def test_whatever_the_command_api_accepts_every_projection_applies(http, tenant, pool, request) -> None:
    path, method, body = request
    sid = new_session_id()
    status = await _send(http, tenant, sid, path, method, body)
    event(f"{path.split('?')[0] or 'start'}: {status}")
    events = await EventStore(pool).read_stream(tenant.name, sid)
    if status >= 400:
        assert len(events) == (0 if method == "START" else 1)  # the refused command wrote nothing
    async with pool.acquire() as conn, conn.transaction():
        result = await BatchApplier(PROJECTIONS, f"{GROUP}.{uuid.uuid4().hex[:6]}", 1).apply(conn, events)
    assert result.parked == [], (request, result.parked)
    assert result.applied == len(events)
