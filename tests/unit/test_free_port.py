"""tests/factories.free_port: ports a server can bind, that no outgoing connection takes meanwhile."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from tests import factories
from tests.factories import _ephemeral_low, free_port


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    low = _ephemeral_low()
    ports = [free_port() for _ in range(40)]

    assert len(set(ports)) == len(ports)
    assert all(1024 <= port < low for port in ports)
    for port in ports[:5]:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
            server.listen()


def test_a_port_something_is_bound_to_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        busy = taken.getsockname()[1]
        offered = iter([busy, busy + 1 if busy + 1 < _ephemeral_low() else busy - 1])
        monkeypatch.setattr(factories, "_RANDOM", SimpleNamespace(choice=lambda candidates: next(offered)))
        factories._GIVEN.discard(busy)  # as if another process had bound it

        port = free_port()

        assert port != busy and abs(port - busy) == 1
