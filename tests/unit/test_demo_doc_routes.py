"""Every request docs/demo.md and the README show names a route and method of the API it is sent
to, by the apps' own OpenAPI documents (no services needed; tests/system runs them for real)."""

from __future__ import annotations

import re

import pytest

from commands.api.app import create_app as command_app
from commands.api.settings import CommandsSettings
from eventstore.settings import Settings
from projections.api.app import create_app as query_app
from projections.settings import QueriesSettings
from tests.system.demo_doc import DOC, README, demo_requests

VARIABLES = {"CMD": "http://commands", "QRY": "http://queries", "KEY": "al_x_y"}


def _routes(app) -> list[tuple[str, re.Pattern]]:
    routes = []
    for path, operations in app.openapi()["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
        routes += [(method.upper(), pattern) for method in operations]
    return routes


@pytest.fixture(scope="module")
def apps() -> dict[str, list]:
    return {
        "http://commands": _routes(command_app(CommandsSettings(), shared=Settings())),
        "http://queries": _routes(query_app(QueriesSettings(), shared=Settings())),
    }


@pytest.mark.parametrize("doc", [DOC, README], ids=["demo", "readme"])
def test_demo_doc_every_request_names_an_existing_route(apps, doc) -> None:
    markdown = doc.read_text().replace("localhost:8000", "$CMD").replace("localhost:8001", "$QRY")
    requests = [r for group in demo_requests(VARIABLES, markdown) for r in group]
    assert len(requests) >= (3 if doc == README else 20)
    for request in requests:
        base, _, rest = request.url.partition("/v1/")
        path = "/v1/" + rest.split("?", 1)[0]
        assert any(method == request.method and pattern.match(path) for method, pattern in apps[base]), (
            f"{doc.name}: {request.method} {path} is not a route of {base}"
        )


def test_demo_doc_parser_refuses_an_unknown_curl_option() -> None:
    with pytest.raises(ValueError, match="--data-binary"):
        demo_requests(VARIABLES, "```bash\ncurl -s --data-binary @x $CMD/v1/sessions\n```\n")
