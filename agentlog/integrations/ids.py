"""A framework's own ids (a LangGraph thread id, an SDK session id) as agentlog session ids.

Invariant: the mapping is a function: the same framework id always names the same session, and
two framework ids never name the same session (up to SHA-256). An id that is already a valid
session id (1-128 of letters, digits and `._:@-`, starting with a letter or digit) and does not
start with a reserved prefix is the session id itself, so `agentlog history <thread id>` works;
any other is `<prefix>.x.` + its UTF-8 in hex (readable back, `framework_id`) when that fits, else
`<prefix>.h.` + its SHA-256 (the events keep the framework id).
"""

from __future__ import annotations

import hashlib
import re

_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
MAX_ID = 128


def session_id_for(framework_id: str, prefix: str) -> str:
    if _VALID.fullmatch(framework_id) and not framework_id.startswith(f"{prefix}."):
        return framework_id
    encoded = f"{prefix}.x.{framework_id.encode().hex()}"
    if len(encoded) <= MAX_ID:
        return encoded
    return f"{prefix}.h.{hashlib.sha256(framework_id.encode()).hexdigest()}"


def framework_id(session_id: str, prefix: str) -> str | None:
    """The framework id `session_id_for` mapped to `session_id`, when it can be read back."""
    if session_id.startswith(f"{prefix}.h."):
        return None
    if session_id.startswith(f"{prefix}.x."):
        try:
            return bytes.fromhex(session_id[len(prefix) + 3 :]).decode()
        except ValueError:
            return None
    return session_id
