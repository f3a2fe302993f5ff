"""The relay's and the projector's /metrics have no auth: they bind loopback unless configured."""

from __future__ import annotations

from outbox.settings import RelaySettings
from projections.settings import ProjectorSettings


def test_metrics_bind_loopback_by_default() -> None:
    assert RelaySettings().metrics_host == "127.0.0.1"
    assert ProjectorSettings().metrics_host == "127.0.0.1"


def test_metrics_host_is_configurable(monkeypatch) -> None:
    monkeypatch.setenv("AGENTLOG_RELAY_METRICS_HOST", "0.0.0.0")
    monkeypatch.setenv("AGENTLOG_PROJECTOR_METRICS_HOST", "0.0.0.0")
    assert RelaySettings().metrics_host == "0.0.0.0"
    assert ProjectorSettings().metrics_host == "0.0.0.0"
