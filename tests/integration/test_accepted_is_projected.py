"""Property: whatever the command API accepts, every projection applies (issue 9 item 2's rule).

Hypothesis generates command bodies of every shape the models describe, with the awkward values
a client can send (extreme and non-finite numbers, any unicode including NUL, deep and wide JSON,
far dates in any offset), sends each through the real command API on the real Postgres, and
applies the session's stored events with the real projection applier. Each example must end in
either a 4xx (a 422 naming a field) or events that every projection applies without parking.
"""

from __future__ import annotations

import uuid

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
from tests.integration.command_strategies import names, steps_numbers
from tests.integration.json_strategies import KIB, any_json, instants, to_json_text
from tests.integration.json_strategies import objects as objects_up_to

EXAMPLES = 100
GROUP = "agentlog.test.accepted-is-projected.v1"

# The strategies are those of the pipeline property test (json_strategies.py, command_strategies.py).
objects = objects_up_to(16 * KIB)
wide_and_shallow = any_json(256 * KIB)

# (path relative to the session, method, body): one strategy per command endpoint.
requests = st.one_of(
    st.builds(lambda m, t: ("", "START", {"metadata": m, "title": t}), objects, names),
    st.builds(lambda c: ("messages", "POST", {"role": "user", "content": c}), names),
    st.builds(lambda a: ("tool-calls", "POST", {"tool": "t", "arguments": a}), objects),
    st.builds(lambda n, s: ("checkpoints", "POST", {"name": n, "step": s}), names, steps_numbers),
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
    content = to_json_text(body)  # NaN, Infinity and lone surrogates go out as a hostile client sends them
    if method == "START":
        response = await http.post(
            "/v1/sessions", headers=headers, content=to_json_text({"session_id": sid, "agents": ["billing"], **body})
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
