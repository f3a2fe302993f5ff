"""`agentlog dev`: the whole system on one machine, in the foreground.

Brings the stack up (only the services that were not running), migrates, makes sure a development
API key exists and the Kafka topic exists (so the projector does not subscribe to a topic the relay
has not created yet, which logs an ERROR on a first run), then runs each component as its own child process, exactly as in production
(`agentlog serve commands`, `serve queries`, `relay`, `project`). Ctrl-C stops the children and
the services this run started, and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from agentlog.edge import keys as auth
from agentlog.stack.settings import StackSettings
from agentlog.stack.stack import Stack, project_home
from eventstore import db, migrations
from eventstore.settings import Settings
from outbox.settings import RelaySettings
from outbox.topics import ensure_topic

log = logging.getLogger("agentlog.dev")

COMPONENTS = [
    # (name, argv after `agentlog`)
    ("command API", ["serve", "commands"]),
    ("query API", ["serve", "queries"]),
    ("relay", ["relay"]),
    ("projector", ["project"]),
]

# /metrics of the two background processes (the APIs serve theirs on their own port).
METRICS_PORTS = {"AGENTLOG_RELAY_METRICS_PORT": "9464", "AGENTLOG_PROJECTOR_METRICS_PORT": "9465"}


async def _dev_key(dsn: str, key_file: Path) -> str:
    """Reuse the development key kept in the stack folder while it is still valid."""
    conn = await db.connect(dsn)
    try:
        if key_file.exists():
            key = key_file.read_text().strip()
            try:
                await auth.KeyVerifier(conn).verify(f"Bearer {key}")
                return key
            except Exception:
                log.info("the saved development key is not valid here; creating a new one")
        key = await auth.create_key(conn, "dev", "admin", "agentlog dev")
    finally:
        await conn.close()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    # A session of its own: where the kernel schedules by session (autogroup), each component
    # weighs as much as one PostgreSQL backend (each is a session too) instead of all of them
    # sharing the terminal's one share; and Ctrl-C reaches only this process, which stops them.
    return subprocess.Popen([sys.executable, "-m", "agentlog", *argv], env=env, start_new_session=True)


def _explorer_env(env: dict[str, str]) -> None:
    """The session explorer (/ui of the query API) posts "fork here" to the command API: tell the
    query API where it is, and let the command API answer the explorer's origin (CORS)."""
    commands_port = env.get("AGENTLOG_COMMANDS_PORT", "8000")
    queries_port = env.get("AGENTLOG_QUERIES_PORT", "8001")
    env.setdefault("AGENTLOG_QUERIES_UI_COMMAND_API_URL", f"http://127.0.0.1:{commands_port}")
    env.setdefault("AGENTLOG_COMMANDS_CORS_ORIGINS", f"http://127.0.0.1:{queries_port},http://localhost:{queries_port}")


def _stop_children(children: list[tuple[str, subprocess.Popen]]) -> None:
    for _, proc in children:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for name, proc in children:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", name)
            proc.kill()


def run_dev(settings: Settings, stack_settings: StackSettings, with_stack: bool = True) -> int:
    stack = Stack.from_settings(stack_settings)
    was_running = stack.running()
    if with_stack:
        asyncio.run(stack.up(log=log.info))
    # The children are processes of their own: they get the settings through their environment.
    env = dict(os.environ)
    env.setdefault("AGENTLOG_DATABASE_URL", stack.database_url())
    env.setdefault("AGENTLOG_KAFKA_BOOTSTRAP_SERVERS", stack.kafka_bootstrap())
    for name, port in METRICS_PORTS.items():
        env.setdefault(name, port)
    _explorer_env(env)
    dsn = env["AGENTLOG_DATABASE_URL"]
    migrations.upgrade(dsn)
    key = asyncio.run(_dev_key(dsn, project_home(stack.settings) / "dev-api-key"))
    _ensure_topic(settings.model_copy(update={"kafka_bootstrap_servers": env["AGENTLOG_KAFKA_BOOTSTRAP_SERVERS"]}))

    stopping = False

    def _on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    children = [(name, _spawn(argv, env)) for name, argv in COMPONENTS]
    exit_code = 0
    try:
        # The URLs are printed once both APIs answer /readyz, so a user can use them right away.
        announced = False
        while not stopping:
            for name, proc in children:
                if proc.poll() is not None:
                    log.error("%s exited with code %s; stopping everything", name, proc.returncode)
                    stopping, exit_code = True, 1
            if not announced and not stopping and _apis_ready(env):
                _announce(env, key, [name for name, _ in children])
                announced = True
            time.sleep(0.2)
    finally:
        _stop_children(children)
        _stop_started_services(stack, was_running, with_stack)
    return exit_code


def _ensure_topic(settings: Settings) -> None:
    """Create the topic before any component starts (the relay's own check then finds it)."""
    relay = RelaySettings()
    if relay.check_topic:
        asyncio.run(
            ensure_topic(settings.kafka_bootstrap_servers, settings.kafka_topic, settings.kafka_partitions, relay)
        )


def _stop_started_services(stack: Stack, was_running: dict[str, bool], with_stack: bool) -> None:
    if not with_stack:
        return
    stack.stop_started(was_running)
    log.info("stopped what this run started")


def _apis_ready(env: dict[str, str]) -> bool:
    for api, default_port in (("COMMANDS", "8000"), ("QUERIES", "8001")):
        url = f"http://127.0.0.1:{env.get(f'AGENTLOG_{api}_PORT', default_port)}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status != 200:
                    return False
        except OSError:
            return False
    return True


def _announce(env: dict[str, str], key: str, running: list[str]) -> None:
    commands_port = env.get("AGENTLOG_COMMANDS_PORT", "8000")
    queries_port = env.get("AGENTLOG_QUERIES_PORT", "8001")
    print(
        f"\nagentlog is running: {', '.join(running) or 'no components yet'}\n"
        f"  command API  http://127.0.0.1:{commands_port}  (docs: /docs)\n"
        f"  query API    http://127.0.0.1:{queries_port}\n"
        f"  explorer     http://127.0.0.1:{queries_port}/ui/  (paste the key below)\n"
        f"  relay        http://127.0.0.1:{env['AGENTLOG_RELAY_METRICS_PORT']}/metrics\n"
        f"  projector    http://127.0.0.1:{env['AGENTLOG_PROJECTOR_METRICS_PORT']}/metrics\n"
        f"  Kafka        {env['AGENTLOG_KAFKA_BOOTSTRAP_SERVERS']}  topic {env.get('AGENTLOG_KAFKA_TOPIC', 'agentlog.sessions.v1')}\n"
        f"  development API key (tenant 'dev', role admin):\n{key}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
