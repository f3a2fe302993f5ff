"""API keys: each bound to one tenant and one role; stored as a SHA-256 of a 256-bit random secret
(a fast hash is enough for a secret that is not a password). The full key is shown once, at
creation, and never logged.

Key format: `al_<key_id>_<secret>`. Verification looks the key id up, compares hashes in constant
time, and caches a good answer briefly so that authentication costs no round trip per request.

Revocation bound: a revoked key stops working in every API process within the good-key cache
TTL (AGENTLOG_COMMANDS_AUTH_CACHE_TTL_S / AGENTLOG_QUERIES_AUTH_CACHE_TTL_S, default
DEFAULT_CACHE_TTL_S = 5 s) after `revoke_key` commits; a bad answer is never cached.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import asyncpg

from agentlog.edge.errors import AuthenticationError, PermissionDeniedError

ROLES = ("reader", "writer", "admin")
DEFAULT_CACHE_TTL_S = 5.0
_RANK = {role: rank for rank, role in enumerate(ROLES)}


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant: str
    role: str

    def require(self, role: str) -> Principal:
        """Raise PermissionDeniedError unless this key's role is at least `role`."""
        if _RANK[self.role] < _RANK[role]:
            raise PermissionDeniedError(f"this API key has role '{self.role}'; '{role}' is needed")
        return self


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def create_key(
    conn: asyncpg.Connection | asyncpg.Pool, tenant: str, role: str = "writer", description: str = ""
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not tenant or len(tenant) > 128 or not tenant.isprintable() or any(c.isspace() for c in tenant):
        raise ValueError("tenant must be 1-128 printable characters without whitespace")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_keys (key_id, tenant, role, secret_hash, description) VALUES ($1, $2, $3, $4, $5)",
        key_id,
        tenant,
        role,
        _hash(secret),
        description,
    )
    return f"al_{key_id}_{secret}"


async def revoke_key(conn: asyncpg.Connection | asyncpg.Pool, key_id: str) -> bool:
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    return status.endswith("1")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    tenant: str
    role: str
    description: str
    created_at: object
    revoked_at: object | None


async def list_keys(conn: asyncpg.Connection | asyncpg.Pool, tenant: str | None = None) -> list[KeyInfo]:
    """Every key (of one tenant if given), oldest first; secrets are never stored, so never shown."""
    rows = await conn.fetch(
        "SELECT key_id, tenant, role, description, created_at, revoked_at FROM api_keys "
        "WHERE $1::text IS NULL OR tenant = $1 ORDER BY created_at, key_id",
        tenant,
    )
    return [KeyInfo(**dict(row)) for row in rows]


class KeyVerifier:
    """Verifies bearer keys against `api_keys`, caching good answers for `ttl_s` seconds."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float = DEFAULT_CACHE_TTL_S, max_entries: int = 10_000) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._cache: dict[bytes, tuple[float, Principal]] = {}

    async def verify(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        digest = _hash(token)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached and cached[0] > now:
            return cached[1]
        principal = await self._lookup(token)
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
        self._cache[digest] = (now + self._ttl_s, principal)
        return principal

    async def _lookup(self, token: str) -> Principal:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "al":
            raise AuthenticationError("malformed API key")
        _, key_id, secret = parts
        row = await self._pool.fetchrow(
            "SELECT tenant, role, secret_hash FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), _hash(secret)):
            raise AuthenticationError("unknown or revoked API key")
        return Principal(key_id=key_id, tenant=row["tenant"], role=row["role"])


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationError("missing Authorization header; send `Authorization: Bearer <api key>`")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("the Authorization header must be `Bearer <api key>`")
    return token.strip()
