"""The stack names what is wrong instead of failing obscurely: a port taken by another program."""

from __future__ import annotations

import shutil
import socket

import pytest

from agentlog.stack.kafka import KafkaBroker
from agentlog.stack.postgres import PostgresCluster
from agentlog.stack.processes import StackError


@pytest.fixture
def taken_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_postgres_start_names_the_port_when_taken_by_another_program(tmp_path, taken_port) -> None:
    cluster = PostgresCluster(home=tmp_path, port=taken_port)
    cluster.init()
    try:
        with pytest.raises(StackError, match=f"port {taken_port} is taken"):
            cluster.start()
        assert not cluster.is_running()
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)


def test_kafka_start_names_the_port_when_taken_by_another_program(tmp_path, taken_port) -> None:
    broker = KafkaBroker(home=tmp_path, port=taken_port, controller_port=taken_port + 1)
    with pytest.raises(StackError, match=f"port {taken_port} is taken"):
        broker.start()
    assert not broker.is_running()
