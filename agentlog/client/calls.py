"""A call: one logical request to an agentlog API, as data, with the function that reads its answer.

Invariant: a call is built once per method invocation and never changes while it is retried, so
every attempt of a write sends the same Idempotency-Key (made here, at build time, unless the
caller gave one) and the same If-Match. Building does no I/O; the clients send (sync_client.py,
async_client.py) and ClientCore (core.py) turns a call into an httpx.Request and an answer into a
result or a typed error.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx

T_co = TypeVar("T_co", covariant=True)

Api = Literal["commands", "queries"]
Reads = Literal["session", "tenant"]


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def path(*segments: str) -> str:
    """/v1/... with each segment percent-encoded, so an id can never reach another endpoint."""
    return "/v1/" + "/".join(quote(str(s), safe=":@") for s in segments)


@dataclass(frozen=True, slots=True)
class Call(Generic[T_co]):
    api: Api
    method: str
    path: str
    parse: Callable[[httpx.Response], T_co]
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    session_id: str | None = None
    """The session this call writes or reads (None for the tenant-wide queries)."""
    reads: Reads | None = None
    """For queries: which read-your-writes bound applies (per-session version or global position)."""

    def next_page(self, cursor: str | None) -> Call[T_co] | None:
        """The same query for the page after this one (None when there is none)."""
        if cursor is None:
            return None
        return dataclasses.replace(self, params={**self.params, "cursor": cursor})


def query_params(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones (the API's defaults apply), in wire form."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out
