"""docker-compose.kafka.yml cannot run here (no Docker engine); what can be checked without one is."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.kafka.yml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_declares_stack_and_every_component() -> None:
    services = _compose()["services"]
    assert {"postgres", "kafka", "migrate", "commands", "queries", "relay", "projector"} <= set(services)
    commands = {name: services[name]["command"] for name in ("commands", "queries", "relay", "projector")}
    assert commands["commands"].startswith("agentlog serve commands")
    assert commands["queries"].startswith("agentlog serve queries")
    assert commands["relay"] == "agentlog relay"
    assert commands["projector"] == "agentlog project"


def test_compose_file_kafka_is_single_node_kraft_with_one_replica_internals() -> None:
    env = _compose()["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == 1


def test_compose_file_services_point_at_compose_hosts_and_wait_for_migrations() -> None:
    services = _compose()["services"]
    for name in ("commands", "queries", "relay", "projector"):
        env = services[name]["environment"]
        assert env["AGENTLOG_DATABASE_URL"].startswith("postgresql://agentlog:")
        assert "@postgres:5432/" in env["AGENTLOG_DATABASE_URL"]
        assert env["AGENTLOG_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_file_runs_the_installed_package_not_the_source_folder() -> None:
    services = _compose()["services"]
    migrate = services["migrate"]["command"]
    assert "pip install" in migrate and "agentlog migrate" in migrate
    assert migrate.index("pip install") < migrate.index("agentlog migrate")
    for name in ("commands", "queries", "relay", "projector", "migrate"):
        service = services[name]
        assert "PYTHONPATH" not in service["environment"], name
        assert service["environment"]["PATH"].startswith("/venv/bin:"), name
    for name in ("commands", "queries", "relay", "projector"):
        mounts = [volume.split(":")[1] for volume in services[name]["volumes"]]
        assert "/app" not in mounts, f"{name} must not see the source folder"
