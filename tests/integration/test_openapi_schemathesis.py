"""schemathesis over both OpenAPI documents, as each API serves it, against the real Postgres.

Issue 9 (finding 11): the documents describe every answer as it is sent. For each operation of
both APIs, schemathesis generates requests from the document (valid ones and invalid ones) and
sends them with a valid API key; every answer must pass five checks: no 5xx, a documented status,
a documented content type, the documented headers and a body that fits the documented schema. A
stateful run follows the links of the command document (start a session, then operate on it).

Both APIs run under uvicorn, each in a thread of its own (schemathesis sends blocking requests),
on one scratch database. The query API reads read models that the real projector built from a
few seeded sessions (through Kafka), and its read-your-writes wait is capped at a few
milliseconds: a 504 projection_behind is then an ordinary, documented answer, not a failure.

Bounded and reproducible: Hypothesis derandomized (a fixed seed per test), EXAMPLES examples per
operation and generation mode, no example database. The counts land in COUNTS and are printed
at the end of the module (run with -s to see them).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import hypothesis
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from agentlog.edge.keys import create_key
from agentlog.stack import kafka_probe
from commands import models as cmd
from commands.api.app import create_app as create_command_app
from commands.api.settings import CommandsSettings
from commands.fork import fork_session
from commands.handler import CommandHandler, CommandRequest
from eventstore import db
from eventstore.settings import Settings
from eventstore.store import EventStore
from projections.api.app import create_app as create_query_app
from projections.settings import QueriesSettings
from tests.factories import create_database, drop_database, session_id, tenant_id, topic_name, with_database
from tests.integration.projection_support import applied_version, produce, running_projector, settings
from tests.integration.timetravel_support import write_conversation
from tests.waiting import wait_until

EXAMPLES = 20  # per operation and generation mode
STATEFUL_SCENARIOS = 20
STATEFUL_STEPS = 8
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
COUNTS: Counter[str] = Counter()
ACCEPTED: Counter[str] = Counter()  # 2xx answers to valid (positive) requests, per operation


def _settings(max_examples: int, **extra) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
        **extra,
    )


def _config(*, expected_server_errors: tuple[str, ...] = ()) -> SchemathesisConfig:
    # Auth is sent by the tests (a valid key), not generated; a 504 projection_behind is the
    # query API's documented answer to a wait that ran out, not a server error.
    checks = {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", *expected_server_errors]}}
    return SchemathesisConfig.from_dict({"generation": {"with-security-parameters": False}, "checks": checks})


def _checks() -> list:
    return [getattr(schemathesis.checks, name) for name in CHECK_NAMES]


class _Server:
    """One app under uvicorn in a thread of its own, on a port the OS picks."""

    def __init__(self, app) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="schemathesis-server", daemon=True)

    async def start(self) -> str:
        self.thread.start()
        await wait_until(
            lambda: self.server.started or not self.thread.is_alive(), timeout=30, message="uvicorn started"
        )
        assert self.server.started, "the server did not start"
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await wait_until(lambda: not self.thread.is_alive(), timeout=30, message="uvicorn stopped")


@dataclass
class World:
    commands_url: str
    queries_url: str
    writer: dict[str, str]
    reader: dict[str, str]
    projected: list[str]  # sessions in every read model


@pytest.fixture(scope="module")
async def world(services, template_database: str, kafka_bootstrap: str) -> Iterator[World]:
    admin = services.database_url()
    name = await create_database(admin, template=template_database)
    url = with_database(admin, name)
    servers: list[_Server] = []
    pool = await db.create_pool(url, min_size=1, max_size=4)
    try:
        tenant = tenant_id()
        writer = {"Authorization": f"Bearer {await create_key(pool, tenant, 'writer')}"}
        reader = {"Authorization": f"Bearer {await create_key(pool, tenant, 'reader')}"}
        projector = settings()
        projected = await _seed_read_models(pool, kafka_bootstrap, projector, tenant)
        shared = Settings(database_url=SecretStr(url))
        # a wait that cannot be met ends at once: 504 projection_behind, documented
        # and a live stream (/events) ends after a moment, an answer schemathesis can check
        queries = QueriesSettings(
            projector_group=projector.group_id,
            default_wait_ms=20,
            max_wait_ms=20,
            live_max_s=0.1,
            live_keepalive_s=0.05,
        )
        for app in (create_command_app(CommandsSettings(), shared=shared), create_query_app(queries, shared=shared)):
            servers.append(_Server(app))
        commands_url, queries_url = [await server.start() for server in servers]
        yield World(commands_url, queries_url, writer, reader, projected)
    finally:
        for server in servers:
            await server.stop()
        await pool.close()
        await drop_database(admin, name)
    _print_counts()


async def _seed_read_models(pool, bootstrap: str, projector, tenant: str) -> list[str]:
    """Sessions written through the command handler (the store's rows, as the API writes them) and
    projected by the real projector from a topic: the support case with its model calls, a tool
    call and a decided approval, completed; and a fork of it (one to list) left open with a failed
    tool call and a pending approval."""
    store = EventStore(pool)
    handler = CommandHandler(store)
    case, fork = session_id("case"), session_id("fork")
    await write_conversation(store, tenant, case)
    await fork_session(store, tenant, case, 3, new_session_id=fork, metadata={"tenant": tenant})
    for sid, commands in {
        case: [
            cmd.UpdateStateSection(agent="billing", section="billing", changes={"refund": {"amount": 42}}),
            cmd.RequestToolCall(call_id="c1", tool="refund", arguments={"amount": 42}, agent="billing"),
            cmd.CompleteToolCall(call_id="c1", result={"ok": True}, duration_ms=120),
            cmd.RequestApproval(approval_id="a1", action="refund 42 EUR", requested_by="policy"),
            cmd.DecideApproval(approval_id="a1", decision="approved", reviewer="alice"),
            cmd.SaveCheckpoint(name="refunded", step=3),
            cmd.CompleteSession(outcome="resolved"),
        ],
        fork: [
            cmd.RequestToolCall(call_id="c1", tool="refund", arguments={"amount": 42}, agent="billing"),
            cmd.FailToolCall(call_id="c1", error="card network timeout", duration_ms=30000),
            cmd.RequestApproval(approval_id="a1", action="refund 42 EUR", risk="high", requested_by="policy"),
        ],
    }.items():
        await handler.handle(CommandRequest(tenant, sid, commands, metadata={"tenant": tenant}))
    topic = topic_name()
    await kafka_probe.ensure_topic(bootstrap, topic, partitions=1)
    recorded = {sid: await store.read_stream(tenant, sid) for sid in (case, fork)}
    await produce(bootstrap, topic, [r for rs in recorded.values() for r in rs])
    async with running_projector(pool, bootstrap, topic, projector):
        for sid, rs in recorded.items():
            await wait_until(
                lambda sid=sid, last=rs[-1].version: _reached(pool, projector.group_id, tenant, sid, last),
                timeout=60,
                message=f"{sid} projected",
            )
    return [case, fork]


async def _reached(pool, group: str, tenant: str, sid: str, version: int) -> bool:
    return await applied_version(pool, group, tenant, sid) >= version


def _print_counts() -> None:
    operations = sorted(k for k in COUNTS if not k.startswith("stateful"))
    print("\nschemathesis cases per operation (2xx answers to valid requests):")
    for label in operations:
        print(f"  {COUNTS[label]:5d} ({ACCEPTED[label]:3d})  {label}")
    print(f"schemathesis: {len(operations)} operations, {sum(COUNTS[k] for k in operations)} cases")
    for api in ("commands", "queries"):
        print(
            f"stateful {api}: {COUNTS[f'stateful {api} scenarios']} scenarios, {COUNTS[f'stateful {api} calls']} calls"
        )


# The parameters an operation cannot do without, for its plain request on a seeded session.
PLAIN_QUERY = {"/v1/sessions/{session_id}/diff": {"from": 1}, "/v1/sessions/{session_id}/context": {"call_id": "m1"}}


def _labels(app) -> list[str]:
    return [f"{method.upper()} {path}" for path, item in app.openapi()["paths"].items() for method in item]


_OFFLINE = Settings(database_url=SecretStr("postgresql://offline@127.0.0.1/unused"))  # documents need no database
COMMAND_OPERATIONS = _labels(create_command_app(CommandsSettings(), shared=_OFFLINE))
QUERY_OPERATIONS = _labels(create_query_app(QueriesSettings(), shared=_OFFLINE))


def _operation(base_url: str, label: str, config: SchemathesisConfig):
    """The operation `label` of the document the API at `base_url` serves."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    method, path = label.split(" ", 1)
    return schema[path][method]


def _fuzz(api: str, operation, headers: dict[str, str], existing: Callable[[int], str]) -> None:
    """Send EXAMPLES valid and EXAMPLES invalid requests of one operation; every answer checked.

    Half the valid requests whose path names a session name one that exists, `existing(n)`
    (else nearly all of them would be 404 session_not_found)."""
    label = f"{api} {operation.label}"
    checks = _checks()
    takes_input = operation.path_parameters or operation.query or operation.body or operation.headers
    with requests.Session() as http:
        for mode in [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] if takes_input else [])]:
            positive = mode is GenerationMode.POSITIVE
            names_a_session = "{session_id}" in operation.path
            pick = st.one_of(st.none(), st.integers(0, 9)) if positive and names_a_session else st.none()

            @_settings(EXAMPLES)
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode), n=pick, positive=st.just(positive))
            def run(case, n, positive) -> None:
                if n is not None:
                    case.path_parameters = {**(case.path_parameters or {}), "session_id": existing(n)}
                COUNTS[label] += 1
                response = case.call_and_validate(session=http, headers=headers, checks=checks)
                if positive and response.status_code < 300:
                    ACCEPTED[label] += 1

            run()


@pytest.mark.parametrize("label", COMMAND_OPERATIONS)
def test_openapi_command_api_answers_as_its_document_states(world: World, label: str) -> None:
    with requests.Session() as http:

        def new_session(_: int) -> str:
            # a session of its own for each request: an earlier one may have closed the last
            r = http.post(f"{world.commands_url}/v1/sessions", json={}, headers=world.writer)
            assert r.status_code == 201, r.text
            return r.json()["session_id"]

        _fuzz("commands", _operation(world.commands_url, label, _config()), world.writer, new_session)


@pytest.mark.parametrize("label", QUERY_OPERATIONS)
def test_openapi_query_api_answers_as_its_document_states(world: World, label: str) -> None:
    operation = _operation(world.queries_url, label, _config(expected_server_errors=("504",)))
    # First each seeded session plainly (no wait, no cursor): a 200 whose body is checked against
    # the documented schema on rows the real projector wrote, whatever the fuzzing reaches.
    for sid in world.projected:
        path = {"session_id": sid} if "{session_id}" in operation.path else {}
        case = operation.Case(path_parameters=path, query=PLAIN_QUERY.get(operation.path, {}))
        response = case.call_and_validate(headers=world.reader, checks=_checks())
        assert response.status_code == 200, response.text
        COUNTS[f"queries {operation.label}"] += 1
        ACCEPTED[f"queries {operation.label}"] += 1

    def projected(n: int) -> str:
        return world.projected[n % len(world.projected)]

    _fuzz("queries", operation, world.reader, projected)


@pytest.mark.parametrize("api", ["commands", "queries"])
def test_openapi_stateful_along_the_documents_links(world: World, api: str) -> None:
    """Scenarios along the documents' links: a start's (or a list's) session_id feeds the
    operations on that session, a tool call's or approval's id its result or decision."""
    if api == "commands":
        url, headers, config = world.commands_url, world.writer, _config()
    else:
        url, headers, config = world.queries_url, world.reader, _config(expected_server_errors=("504",))
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)
    checks = _checks()
    http = requests.Session()

    class Workflow(schema.as_state_machine()):
        def setup(self) -> None:
            COUNTS[f"stateful {api} scenarios"] += 1

        def get_call_kwargs(self, case) -> dict:
            return {"session": http, "headers": headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            COUNTS[f"stateful {api} calls"] += 1
            case.validate_response(response, checks=checks, headers=headers)

    try:
        Workflow.run(settings=_settings(STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS))
    finally:
        http.close()
    assert COUNTS[f"stateful {api} calls"] > COUNTS[f"stateful {api} scenarios"], "no scenario went past its first call"
