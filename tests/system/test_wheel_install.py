"""The wheel is enough: built from this checkout, installed into a new virtualenv outside it, and run
from a folder that is not the checkout, agentlog migrates a database to head and sees the stack.

This guards what a source checkout hides: the migrations, alembic's configuration, the Kafka POM and
the session explorer's page must travel inside the wheel and be found there (not in the checkout).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import asyncpg
import pytest

from eventstore import migrations
from tests.factories import scratch_database

CHECKOUT = Path(__file__).resolve().parents[2]


def build_wheel(root: Path) -> Path:
    """agentlog's wheel, built from this checkout into `root`/dist."""
    wheels = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(CHECKOUT), "-w", str(wheels)],
        check=True,
        cwd=root,
        timeout=300,
    )
    (wheel,) = wheels.glob("agentlog-*.whl")
    return wheel


def new_venv(root: Path) -> Path:
    """The bin/ folder of a new virtualenv (with pip) under `root`."""
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    return env_dir / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a new virtualenv that holds agentlog from its wheel (and its dependencies)."""
    root = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(root)
    bin_dir = new_venv(root)
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)], check=True, cwd=root, timeout=600
    )
    return bin_dir


def _run_agentlog(bin_dir: Path, cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    # A clean environment: no PYTHONPATH that could reach the checkout.
    clean = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(bin_dir / "agentlog"), *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def test_installed_wheel_has_no_path_back_to_the_checkout(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import eventstore.migrations as m, agentlog.stack.kafka as k; print(m.__file__); print(m.script_location())"
    )
    out = subprocess.run(
        [str(installed / "python"), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert not out[0].startswith(str(CHECKOUT)), out
    assert not out[1].startswith(str(CHECKOUT)), out
    assert (Path(out[1]) / "env.py").is_file()
    pom = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "from importlib import resources; print(resources.files('agentlog.stack').joinpath('kafka-pom.xml').read_text())",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "@KAFKA_VERSION@" in pom
    # the session explorer's page (docs/ui.md): every file the query API serves is in the wheel
    explorer = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "from importlib import resources; from projections.api.ui import ASSETS; "
            "print(all(resources.files('projections.api.ui').joinpath(n).is_file() for n in ASSETS), len(ASSETS))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert explorer[0] == "True" and int(explorer[1]) >= 9, explorer


async def test_installed_agentlog_migrates_a_scratch_database_to_head(installed: Path, services, tmp_path) -> None:
    async with scratch_database(services.database_url()) as url:
        done = _run_agentlog(installed, tmp_path, {"AGENTLOG_DATABASE_URL": url}, "migrate")
        assert done.returncode == 0, done.stderr
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT version_num FROM alembic_version") == migrations.head_revision()
        finally:
            await conn.close()


def test_installed_agentlog_reports_the_running_stack_up(installed: Path, services, tmp_path) -> None:
    env = {
        "AGENTLOG_DATABASE_URL": services.database_url(),
        "AGENTLOG_KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap(),
    }
    done = _run_agentlog(installed, tmp_path, env, "stack", "status")
    assert done.returncode == 0, (done.stdout, done.stderr)
    status = json.loads(done.stdout)
    assert status["postgres"]["up"] and status["kafka"]["up"], status
