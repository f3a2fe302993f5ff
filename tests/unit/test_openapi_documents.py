"""The OpenAPI documents of both APIs, read without a server (building an app connects nothing).

Issue 9 finding 11: the documents described FastAPI's HTTPValidationError instead of the
problem+json answers the edge sends, declared PATCH state's answer a string, and left out the
constraints the models enforce. Each test guards one of those; tests/integration/
test_openapi_schemathesis.py checks real answers against the same documents.
"""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from agentlog.edge.errors import PayloadTooLargeError, RateLimitedError
from agentlog.edge.openapi import PROBLEM_SCHEMA
from agentlog.edge.problems import PROBLEM_JSON, problem_body
from commands.api.app import create_app as create_command_app
from commands.api.settings import CommandsSettings
from eventstore.errors import ConcurrencyError
from eventstore.ids import ID_PATTERN
from eventstore.settings import Settings
from projections.api.app import create_app as create_query_app
from projections.api.waiting import ProjectionBehindError
from projections.settings import QueriesSettings

_OFFLINE = Settings(database_url=SecretStr("postgresql://offline@127.0.0.1/unused"))
COMMANDS = create_command_app(CommandsSettings(), shared=_OFFLINE).openapi()
QUERIES = create_query_app(QueriesSettings(), shared=_OFFLINE).openapi()
DOCUMENTS = {"commands": COMMANDS, "queries": QUERIES}


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def _schema(document: dict, name: str) -> dict:
    return document["components"]["schemas"][name]


@pytest.mark.parametrize("api", DOCUMENTS)
def test_openapi_documents_never_mention_fastapis_validation_error(api: str) -> None:
    text = json.dumps(DOCUMENTS[api])
    assert "HTTPValidationError" not in text and '"ValidationError"' not in text


@pytest.mark.parametrize("api", DOCUMENTS)
def test_openapi_every_error_answer_is_problem_json_and_every_answer_names_its_request(api: str) -> None:
    for label, operation in _operations(DOCUMENTS[api]):
        assert "500" in operation["responses"], label
        for status, response in operation["responses"].items():
            assert response["headers"]["X-Request-Id"]["required"] is True, (label, status)
            if int(status) >= 400:
                assert list(response["content"]) == [PROBLEM_JSON], (label, status)
                assert response["content"][PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}


@pytest.mark.parametrize("api", DOCUMENTS)
def test_openapi_authenticated_operations_declare_the_key_and_429_503_with_retry_after(api: str) -> None:
    authenticated = [(label, op) for label, op in _operations(DOCUMENTS[api]) if label.split()[1].startswith("/v1/")]
    assert authenticated
    for label, operation in authenticated:
        assert operation["security"] == [{"apiKey": []}], label
        for status in ("401", "429", "503"):
            assert status in operation["responses"], (label, status)
        for status in ("429", "503"):
            assert operation["responses"][status]["headers"]["Retry-After"]["required"] is True, (label, status)


def test_openapi_problem_schema_lists_the_keys_the_edge_sends() -> None:
    sent = [
        problem_body(422, "invalid_input", "the request is not valid", errors=[{"field": "x", "reason": "y"}]),
        ConcurrencyError("stale", current_version=3).problem(),
        PayloadTooLargeError("too big", max_bytes=1024).problem(),
        RateLimitedError("slow down", retry_after_s=2, limit_per_s=1.5, burst=3).problem(),
        ProjectionBehindError("behind", session_id="s", wanted_version=2, current_version=1).problem(),
    ]
    for body in sent:
        assert set(PROBLEM_SCHEMA["required"]) <= set(body) <= set(PROBLEM_SCHEMA["properties"]), body
    assert _schema(COMMANDS, "FieldError")["required"] == ["field", "reason"]


def test_openapi_patch_state_answers_the_command_answer_with_its_etag() -> None:
    ok = COMMANDS["paths"]["/v1/sessions/{session_id}/state/{section}"]["patch"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CommandAnswer"}
    assert ok["headers"]["ETag"]["required"] is True
    assert set(_schema(COMMANDS, "CommandAnswer")["required"]) == {"session_id", "version", "position", "event_ids"}


def test_openapi_every_write_answers_201_or_200_with_the_command_answer() -> None:
    for label, operation in _operations(COMMANDS):
        if not label.split()[1].startswith("/v1/"):
            continue
        success = [s for s in operation["responses"] if s.startswith("2")]
        creates = label in ("POST /v1/sessions", "POST /v1/sessions/{session_id}/fork")  # a new session
        assert success == (["201"] if creates else ["200"]), label
        headers = {"If-Match", "Idempotency-Key", "X-Correlation-Id", "X-Causation-Id"}
        assert headers <= {p["name"] for p in operation["parameters"] if p["in"] == "header"}, label


def test_openapi_client_chosen_ids_state_the_id_rule() -> None:
    tool = _schema(COMMANDS, "RequestToolCall")["properties"]["tool"]
    assert (tool["pattern"], tool["maxLength"]) == (ID_PATTERN, 128)
    labels = _schema(COMMANDS, "StartSession")["properties"]["labels"]
    assert labels["propertyNames"]["pattern"] == ID_PATTERN and "patternProperties" not in labels
    for _, operation in [*_operations(COMMANDS), *_operations(QUERIES)]:
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["schema"]["pattern"] == ID_PATTERN, parameter


def test_openapi_text_fields_state_their_size_and_control_character_rule() -> None:
    content = _schema(COMMANDS, "AddMessage")["properties"]["content"]
    assert content["maxLength"] == 64 * 1024 and content["pattern"].startswith("^[^\\x00")
    assert "bytes of UTF-8" in content["description"]


def test_openapi_batch_items_require_their_type() -> None:
    # schemathesis: batch items generated without `type` (optional in each command's schema,
    # since a single-command body may leave it out) were all refused 422
    items = _schema(COMMANDS, "CommandBatchBody")["properties"]["commands"]["items"]
    assert items["required"] == ["type"] and items["discriminator"]["propertyName"] == "type"


def test_openapi_parameters_are_never_declared_nullable() -> None:
    for _, operation in [*_operations(COMMANDS), *_operations(QUERIES)]:
        for parameter in operation.get("parameters", []):
            assert {"type": "null"} not in parameter["schema"].get("anyOf", []), parameter


def test_openapi_a_start_or_list_answer_links_to_the_operations_on_that_session() -> None:
    start = COMMANDS["paths"]["/v1/sessions"]["post"]
    assert start["operationId"] == "start_session"
    links = start["responses"]["201"]["links"]
    assert links["add_message"]["parameters"] == {"session_id": "$response.body#/session_id"}
    listed = QUERIES["paths"]["/v1/sessions"]["get"]["responses"]["200"]["links"]
    assert listed["get_state"]["parameters"] == {"session_id": "$response.body#/items/0/session_id"}
    tool_call = COMMANDS["paths"]["/v1/sessions/{session_id}/tool-calls"]["post"]["responses"]["200"]["links"]
    assert tool_call["report_tool_result"]["parameters"]["call_id"] == "$request.body#/call_id"


def test_openapi_query_answers_are_closed_schemas() -> None:
    for name in ("Session", "SessionPage", "SessionState", "Timeline", "ToolCalls", "Audit", "Approvals", "ToolStats"):
        assert _schema(QUERIES, name)["additionalProperties"] is False, name
