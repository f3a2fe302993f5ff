"""Agents install little: agentlog's wheel installed with --no-deps into a new virtualenv, plus only
what its `client` extra asks for (read from the wheel's own metadata), is enough to import
agentlog.client and drive a running command API, with none of the server's libraries present."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
import zipfile
from pathlib import Path

import pytest

from agentlog.edge.keys import create_key
from tests.factories import free_port, tenant_id, topic_name
from tests.system.processes import Component, system_env
from tests.system.test_wheel_install import CHECKOUT, build_wheel, new_venv

SERVER_LIBRARIES = ["asyncpg", "aiokafka", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "orjson"]

# Runs inside the client-only virtualenv, from a folder outside the checkout.
USE_THE_CLIENT = """
import importlib.util, json, sys
import agentlog.client
from agentlog.client import AgentlogClient, ConcurrencyConflictError

url, key, session = sys.argv[1:4]
out = {"client_file": agentlog.client.__file__,
       "server_libraries": [m for m in sys.argv[4:] if importlib.util.find_spec(m) is not None]}
with AgentlogClient(key, commands_url=url) as client:
    out["started"] = client.start_session(session, agents=["billing"]).version
    out["message"] = client.add_message(session, "user", "I was charged twice").version
    out["state"] = client.update_state(session, "billing", {"refund": 42}, agent="billing", expected_version=2).version
    try:
        client.add_message(session, "user", "stale", expected_version=1)
    except ConcurrencyConflictError as conflict:
        out["conflict_current_version"] = conflict.current_version
print(json.dumps(out))
"""


def client_requirements(wheel: Path) -> list[str]:
    """The Requires-Dist lines of the wheel that belong to its `client` extra."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    wanted = []
    for line in lines:
        if line.startswith("Requires-Dist:") and 'extra == "client"' in line:
            wanted.append(line.removeprefix("Requires-Dist:").split(";")[0].strip())
    return wanted


@pytest.fixture(scope="module")
def client_only(tmp_path_factory) -> Path:
    """The python of a new virtualenv with agentlog (no dependencies) and the client extra's."""
    root = tmp_path_factory.mktemp("client-only")
    wheel = build_wheel(root)
    requirements = client_requirements(wheel)
    assert sorted(r.split(">")[0] for r in requirements) == ["httpx", "pydantic"], requirements
    bin_dir = new_venv(root)
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True, cwd=root, timeout=600)
    subprocess.run([*pip, *requirements], check=True, cwd=root, timeout=600)
    return bin_dir / "python"


async def test_client_only_virtualenv_drives_a_running_command_api(
    client_only: Path, database_url, pool, kafka_bootstrap, tmp_path
) -> None:
    port = free_port()
    key = await create_key(pool, tenant_id(), "writer")
    env = system_env(database_url, kafka_bootstrap, topic_name("client"), AGENTLOG_COMMANDS_PORT=str(port))
    commands = Component("commands", ["serve", "commands"], env, tmp_path, port)
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    try:
        await commands.start().wait_ready()
        done = subprocess.run(
            [
                str(client_only),
                "-c",
                USE_THE_CLIENT,
                f"http://127.0.0.1:{port}",
                key,
                f"s-{uuid.uuid4().hex[:12]}",
                *SERVER_LIBRARIES,
            ],
            cwd=tmp_path,
            env=clean,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        commands.stop()
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert not out["client_file"].startswith(str(CHECKOUT)), out
    assert out["server_libraries"] == []
    assert (out["started"], out["message"], out["state"], out["conflict_current_version"]) == (1, 2, 3, 3)
