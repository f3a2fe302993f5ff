"""API keys against the real table: a key verifies to its tenant and role; a wrong secret, a
revoked key and a malformed one are refused."""

from __future__ import annotations

import pytest

from agentlog.edge import keys as auth
from agentlog.edge.errors import AuthenticationError


async def test_api_key_verifies_to_its_tenant_and_role(pool) -> None:
    key = await auth.create_key(pool, "acme", "writer")
    principal = await auth.KeyVerifier(pool).verify(f"Bearer {key}")
    assert (principal.tenant, principal.role) == ("acme", "writer")
    stored = await pool.fetchval("SELECT secret_hash FROM api_keys WHERE key_id = $1", principal.key_id)
    assert key.split("_", 2)[2].encode() not in bytes(stored)


async def test_api_key_verifies_with_any_case_scheme_and_surrounding_spaces(pool) -> None:
    key = await auth.create_key(pool, "acme", "reader")
    for header in (f"bearer {key}", f"BEARER {key}", f"Bearer   {key}  "):
        principal = await auth.KeyVerifier(pool).verify(header)
        assert (principal.tenant, principal.role) == ("acme", "reader")


async def test_api_key_refused_when_secret_is_wrong(pool) -> None:
    key = await auth.create_key(pool, "acme", "reader")
    with pytest.raises(AuthenticationError):
        await auth.KeyVerifier(pool).verify(f"Bearer {key[:-2]}xx")


async def test_api_key_refused_when_revoked(pool) -> None:
    key = await auth.create_key(pool, "acme", "reader")
    key_id = key.split("_")[1]
    assert await auth.revoke_key(pool, key_id)
    with pytest.raises(AuthenticationError):
        await auth.KeyVerifier(pool).verify(f"Bearer {key}")


@pytest.mark.parametrize("token", ["nonsense", "al_only", "xx_a_b"])
async def test_api_key_refused_when_malformed(pool, token: str) -> None:
    with pytest.raises(AuthenticationError):
        await auth.KeyVerifier(pool).verify(f"Bearer {token}")
