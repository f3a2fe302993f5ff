"""The integrations stay light: importing agentlog.integrations.langgraph or .openai_agents in a
fresh interpreter loads nothing of agentlog's server (its packages, its database and Kafka
drivers, its web framework) beyond what the framework itself loads (the Agents SDK imports
starlette and uvicorn for MCP), and the extras are the client's requirements plus the framework."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
SERVER_SIDE = {
    "eventstore",
    "commands",
    "projections",
    "outbox",
    "agentlog.cli",
    "agentlog.edge",
    "agentlog.stack",
    "agentlog.dev",
    "fastapi",
    "uvicorn",
    "asyncpg",
    "aiokafka",
    "sqlalchemy",
    "alembic",
    "prometheus_client",
    "pydantic_settings",
}
PROBE = """
import json, sys

def loaded():
    return {{name.split(".")[0] if not name.startswith("agentlog.") else ".".join(name.split(".")[:2])
             for name in sys.modules}}

import {framework}
before = loaded()
import {module}
print(json.dumps({{"framework": sorted(before), "added": sorted(loaded() - before)}}))
"""


@pytest.mark.parametrize(
    ("module", "framework"),
    [
        ("agentlog.integrations.langgraph", "langgraph.checkpoint.base"),
        ("agentlog.integrations.openai_agents", "agents"),
        ("agentlog.integrations.openai_agents_replay", "agents"),
        ("agentlog.integrations.replayer", "json"),  # no framework: the client only
    ],
)
def test_importing_an_integration_loads_nothing_of_the_server(module: str, framework: str) -> None:
    probe = PROBE.format(module=module, framework=framework)
    done = subprocess.run([sys.executable, "-c", probe], cwd=CHECKOUT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert {"agentlog.client", "agentlog.integrations"} <= set(loaded["added"])
    assert set(loaded["added"]) & SERVER_SIDE == set()
    ours = {"eventstore", "commands", "projections", "outbox", "agentlog.cli", "agentlog.edge", "agentlog.stack"}
    assert set(loaded["framework"]) & ours == set()


def test_the_integration_extras_are_the_client_plus_their_framework() -> None:
    extras = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def names(extra: str) -> list[str]:
        return sorted(requirement.split(">")[0].split("<")[0] for requirement in extras[extra])

    assert names("langgraph") == ["httpx", "langgraph-checkpoint", "pydantic"]
    assert names("openai-agents") == ["httpx", "openai-agents", "pydantic"]
    test_extra = {requirement.split(">")[0] for requirement in extras["test"]}
    assert {"langgraph", "langgraph-checkpoint", "langgraph-checkpoint-conformance", "openai-agents"} <= test_extra
