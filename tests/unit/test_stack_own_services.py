"""A database URL or Kafka bootstrap that names the local stack's own address is the stack's
service, not the user's: `agentlog stack down` stops it and `up` starts it with the URL exported,
unless a process the stack did not start listens there."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from agentlog.stack.settings import StackSettings
from agentlog.stack.stack import Stack, names_kafka_port, names_postgres_port
from tests.factories import free_port


@pytest.mark.parametrize(
    ("url", "port", "named"),
    [
        ("postgresql://agentlog@127.0.0.1:54329/agentlog", 54329, True),
        ("postgresql://agentlog:secret@localhost:54329/other_db?sslmode=disable", 54329, True),
        ("postgres://agentlog@[::1]:54329/agentlog", 54329, True),
        ("postgresql://agentlog@127.0.0.1/agentlog", 5432, True),  # libpq's default port
        ("postgresql://agentlog@127.0.0.1:5432/agentlog", 54329, False),
        ("postgresql://agentlog@db.internal:54329/agentlog", 54329, False),
        ("postgresql://agentlog@127.0.0.1:54329,127.0.0.1:54330/agentlog", 54329, False),
        ("postgresql://agentlog@127.0.0.1:54329/agentlog?host=/var/run/postgresql", 54329, False),
        ("postgresql://agentlog@127.0.0.1:port/agentlog", 54329, False),
    ],
)
def test_a_database_url_names_the_stack_port_only_on_one_loopback_host(url: str, port: int, named: bool) -> None:
    assert names_postgres_port(url, port) is named


@pytest.mark.parametrize(
    ("bootstrap", "named"),
    [
        ("127.0.0.1:19092", True),
        ("localhost:19092,127.0.0.1:19092", True),
        ("[::1]:19092", True),
        ("127.0.0.1:19093", False),
        ("127.0.0.1:19092,kafka.internal:19092", False),
        ("127.0.0.1", False),  # Kafka's default port, not the stack's
        ("", False),
    ],
)
def test_a_bootstrap_names_the_stack_port_only_when_every_broker_is_it(bootstrap: str, named: bool) -> None:
    assert names_kafka_port(bootstrap, 19092) is named


def _stack(home: Path, pg_port: int, kafka_port: int, url: str, bootstrap: str) -> Stack:
    return Stack.from_settings(
        StackSettings(
            home=home, pg_port=pg_port, kafka_port=kafka_port, external_database_url=url, external_kafka=bootstrap
        )
    )


def test_the_stacks_own_address_exported_is_managed_by_the_stack(tmp_path: Path) -> None:
    pg_port, kafka_port = free_port(), free_port()
    url = f"postgresql://agentlog@127.0.0.1:{pg_port}/mine"
    stack = _stack(tmp_path, pg_port, kafka_port, url, f"localhost:{kafka_port}")
    assert (stack.external_database, stack.external_kafka) == (None, None)
    # the URL given still wins for clients: its database, user and options
    assert (stack.database_url(), stack.kafka_bootstrap()) == (url, f"localhost:{kafka_port}")


def test_another_programs_server_on_the_stacks_port_stays_the_users(tmp_path: Path) -> None:
    with socket.socket() as pg, socket.socket() as kafka:
        for listener in (pg, kafka):
            listener.bind(("127.0.0.1", 0))
            listener.listen()
        pg_port, kafka_port = pg.getsockname()[1], kafka.getsockname()[1]
        url, bootstrap = f"postgresql://agentlog@127.0.0.1:{pg_port}/agentlog", f"127.0.0.1:{kafka_port}"
        stack = _stack(tmp_path, pg_port, kafka_port, url, bootstrap)
        assert (stack.external_database, stack.external_kafka) == (url, bootstrap)
        assert stack.down() == []  # nothing of the stack's runs: nothing stopped


def test_other_addresses_stay_the_users(tmp_path: Path) -> None:
    url, bootstrap = "postgresql://agentlog@db.internal:5432/agentlog", "kafka.internal:9092"
    stack = _stack(tmp_path, free_port(), free_port(), url, bootstrap)
    assert (stack.external_database, stack.external_kafka) == (url, bootstrap)
