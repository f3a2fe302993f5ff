"""`agentlog keys list [--tenant T]` and `agentlog keys revoke KEY_ID` on the real database."""

from __future__ import annotations

import uuid

import pytest

from agentlog.cli.main import main


@pytest.fixture
def cli_database(database_url: str, monkeypatch) -> None:
    monkeypatch.setenv("AGENTLOG_DATABASE_URL", database_url)


def _lines(capsys) -> list[list[str]]:
    return [line.split("\t") for line in capsys.readouterr().out.splitlines()]


def test_keys_list_shows_a_tenants_keys_and_revoke_marks_one_revoked(cli_database, capsys) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    assert main(["keys", "create", "--tenant", tenant, "--role", "reader", "--description", "ci"]) == 0
    key = capsys.readouterr().out.strip()
    key_id = key.split("_")[1]

    assert main(["keys", "list", "--tenant", tenant]) == 0
    listed = _lines(capsys)
    assert listed == [[key_id, tenant, "reader", "active", "ci"]]
    assert key.split("_", 2)[2] not in "".join(map("".join, listed))  # the secret is never shown

    assert main(["keys", "revoke", key_id]) == 0
    capsys.readouterr()
    assert main(["keys", "list", "--tenant", tenant]) == 0
    [[_, _, _, state, _]] = _lines(capsys)
    assert state.startswith("revoked ")
    assert main(["keys", "revoke", key_id]) == 1  # already revoked: nothing to do, said so


def test_keys_list_without_tenant_lists_every_tenant(cli_database, capsys) -> None:
    tenants = [f"t-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for tenant in tenants:
        assert main(["keys", "create", "--tenant", tenant]) == 0
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    assert set(tenants) <= {line[1] for line in _lines(capsys)}
