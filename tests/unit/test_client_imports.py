"""The client stays light: importing agentlog.client in a fresh interpreter loads none of the
server's packages or libraries (what `agentlog[client]` does not install), and the import-linter
contract that says so statically is in pyproject.toml."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
SERVER_SIDE = [
    "eventstore",
    "commands",
    "projections",
    "outbox",
    "agentlog.cli",
    "agentlog.edge",
    "agentlog.stack",
    "fastapi",
    "starlette",
    "uvicorn",
    "asyncpg",
    "aiokafka",
    "sqlalchemy",
    "alembic",
    "orjson",
    "prometheus_client",
    "pydantic_settings",
]
PROBE = """
import json, sys
import agentlog.client
from agentlog.client import AgentlogClient, AsyncAgentlogClient
AgentlogClient("key").close()
print(json.dumps(sorted({name.split(".")[0] if not name.startswith("agentlog.") else ".".join(name.split(".")[:2])
                         for name in sys.modules})))
"""


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=CHECKOUT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "agentlog.client" in loaded and "httpx" in loaded
    assert loaded & set(SERVER_SIDE) == set()


def test_the_import_contract_forbids_the_server_to_the_client() -> None:
    config = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (client,) = [c for c in contracts if c.get("source_modules") == ["agentlog.client"]]
    assert client["type"] == "forbidden"
    assert set(SERVER_SIDE) <= set(client["forbidden_modules"])
    assert config["tool"]["importlinter"]["include_external_packages"] is True


def test_the_client_extra_is_httpx_and_pydantic_only() -> None:
    extras = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert sorted(requirement.split(">")[0] for requirement in extras["client"]) == ["httpx", "pydantic"]
