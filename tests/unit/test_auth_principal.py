"""Roles and bearer parsing, without services."""

from __future__ import annotations

import pytest

from agentlog.edge.errors import AuthenticationError, PermissionDeniedError
from agentlog.edge.keys import KeyVerifier, Principal
from agentlog.stack.stack import _redact


@pytest.mark.parametrize(
    "role, needed, allowed",
    [
        ("reader", "reader", True),
        ("reader", "writer", False),
        ("writer", "writer", True),
        ("writer", "admin", False),
        ("admin", "writer", True),
        ("admin", "admin", True),
    ],
)
def test_principal_require_orders_roles(role: str, needed: str, allowed: bool) -> None:
    principal = Principal(key_id="k", tenant="t", role=role)
    if allowed:
        assert principal.require(needed) is principal
    else:
        with pytest.raises(PermissionDeniedError):
            principal.require(needed)


# The verifier parses the header before it looks a key up, so these need no database (pool=None).
@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer    "])
async def test_bearer_refuses_missing_or_other_schemes(header) -> None:
    with pytest.raises(AuthenticationError, match="Authorization header"):
        await KeyVerifier(None).verify(header)


async def test_bearer_accepts_any_case_scheme() -> None:
    # Accepted as a bearer header, the token is then judged as a key (and this one is not one).
    for header in ("bearer not-a-key", "BEARER not-a-key", "Bearer   not-a-key  "):
        with pytest.raises(AuthenticationError, match="malformed API key"):
            await KeyVerifier(None).verify(header)


def test_redact_hides_the_password_of_a_dsn() -> None:
    assert _redact("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert _redact("postgresql://u@h/db") == "postgresql://u@h/db"
