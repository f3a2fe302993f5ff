"""The integrations install little: agentlog's wheel installed with --no-deps into a new virtualenv,
plus only what its `langgraph` extra asks for (read from the wheel's metadata), is enough for
AgentlogSaver to store a checkpoint and a task's writes through a running command API, with none
of the server's libraries present."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
import zipfile
from pathlib import Path

import pytest

from agentlog.edge.keys import create_key
from tests.factories import free_port, tenant_id, topic_name
from tests.system.processes import Component, system_env
from tests.system.test_wheel_install import CHECKOUT, build_wheel, new_venv

# orjson is not among them: LangGraph's own dependencies (langsmith) bring it
SERVER_LIBRARIES = ["asyncpg", "aiokafka", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic"]

# Runs inside the virtualenv, from a folder outside the checkout.
USE_THE_SAVER = """
import importlib.util, json, sys
from langgraph.checkpoint.base import empty_checkpoint
from agentlog.client import AgentlogClient
from agentlog.integrations.langgraph import AgentlogSaver
import agentlog.integrations

url, key, thread = sys.argv[1:4]
out = {"file": agentlog.integrations.__file__,
       "server_libraries": [m for m in sys.argv[4:] if importlib.util.find_spec(m) is not None]}
saver = AgentlogSaver(AgentlogClient(key, commands_url=url))
checkpoint = empty_checkpoint()
checkpoint["channel_values"] = {"amount": 42, "messages": [{"role": "user", "content": "charged twice"}]}
checkpoint["channel_versions"] = {"amount": saver.get_next_version(None, None), "messages": "1.5"}
config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
stored = saver.put(config, checkpoint, {"source": "input", "step": -1}, {"messages": "1.5"})
saver.put_writes(stored, [("amount", 43)], "task-1")
out["checkpoint_id"] = stored["configurable"]["checkpoint_id"] == checkpoint["id"]
print(json.dumps(out))
"""


def extra_requirements(wheel: Path, extra: str) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    return [
        line.removeprefix("Requires-Dist:").split(";")[0].strip()
        for line in lines
        if line.startswith("Requires-Dist:") and f'extra == "{extra}"' in line
    ]


@pytest.fixture(scope="module")
def langgraph_only(tmp_path_factory) -> Path:
    """The python of a new virtualenv with agentlog (no dependencies) and the langgraph extra's."""
    root = tmp_path_factory.mktemp("langgraph-only")
    wheel = build_wheel(root)
    requirements = extra_requirements(wheel, "langgraph")
    assert sorted(re.split(r"[<>=!~ ]", r)[0] for r in requirements) == ["httpx", "langgraph-checkpoint", "pydantic"]
    bin_dir = new_venv(root)
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True, cwd=root, timeout=600)
    subprocess.run([*pip, *requirements], check=True, cwd=root, timeout=900)
    return bin_dir / "python"


async def test_langgraph_extra_alone_stores_checkpoints_through_the_command_api(
    langgraph_only: Path, database_url, pool, kafka_bootstrap, tmp_path
) -> None:
    port = free_port()
    tenant = tenant_id()
    key = await create_key(pool, tenant, "writer")
    env = system_env(database_url, kafka_bootstrap, topic_name("lg"), AGENTLOG_COMMANDS_PORT=str(port))
    commands = Component("commands", ["serve", "commands"], env, tmp_path, port)
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    thread = f"t-{uuid.uuid4().hex[:12]}"
    try:
        await commands.start().wait_ready()
        done = subprocess.run(
            [str(langgraph_only), "-c", USE_THE_SAVER, f"http://127.0.0.1:{port}", key, thread, *SERVER_LIBRARIES],
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
    assert not out["file"].startswith(str(CHECKOUT)), out
    assert (out["server_libraries"], out["checkpoint_id"]) == ([], True)
    rows = await pool.fetch(
        "SELECT type, data FROM events WHERE tenant = $1 AND session_id = $2 ORDER BY version", tenant, thread
    )
    assert [r["type"] for r in rows] == ["SessionStarted", "GraphCheckpointPut", "GraphWritesPut"]
    blobs = rows[1]["data"]["blobs"]
    assert blobs == [
        {
            "channel": "messages",
            "version": "1.5",
            "value": {"kind": "json", "value": [{"role": "user", "content": "charged twice"}], "type": None,
                      "base64": None},
        }
    ]  # fmt: skip
    assert rows[1]["data"]["checkpoint"]["channel_values"] == {"amount": 42}
