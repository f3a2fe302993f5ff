"""The local stack's ports: moving the broker moves its KRaft controller with it unless told apart."""

from __future__ import annotations

import pytest

from agentlog.stack.settings import StackSettings


def test_controller_port_follows_the_broker_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTLOG_STACK_KAFKA_PORT", "29092")
    assert (StackSettings().kafka_port, StackSettings().kafka_controller_port) == (29092, 29093)


def test_controller_port_set_on_its_own_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTLOG_STACK_KAFKA_PORT", "29092")
    monkeypatch.setenv("AGENTLOG_STACK_KAFKA_CONTROLLER_PORT", "39000")
    assert StackSettings().kafka_controller_port == 39000


def test_default_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENTLOG_STACK_KAFKA_PORT", "AGENTLOG_STACK_KAFKA_CONTROLLER_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = StackSettings()
    assert settings.kafka_controller_port == settings.kafka_port + 1
