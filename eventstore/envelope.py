"""The stored event as every reader sees it, and its one wire format (the Kafka record).

A RecordedEvent is a row of `events` after it committed: the same shape comes out of
`read_stream`, `read_all`, and the Kafka topic, so the relay, projectors and the replay CLI all
agree on what an event is. The value is orjson bytes of `envelope()`; the headers repeat what a
consumer needs for routing without parsing the value.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

HEADER_NAMES = (
    "type",
    "schema_version",
    "event_id",
    "session_version",
    "position",
    "correlation_id",
    "tenant",
)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    position: int
    session_id: str
    version: int
    event_id: uuid.UUID
    type: str
    schema_version: int
    data: dict[str, Any]
    tenant: str
    recorded_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def correlation_id(self) -> str | None:
        return self.metadata.get("correlation_id")

    def envelope(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "type": self.type,
            "schema_version": self.schema_version,
            "session_id": self.session_id,
            "version": self.version,
            "position": self.position,
            "tenant": self.tenant,
            "recorded_at": self.recorded_at.isoformat(),
            "data": self.data,
            "metadata": self.metadata,
        }

    def kafka_key(self) -> bytes:
        return self.session_id.encode()

    def kafka_value(self) -> bytes:
        return orjson.dumps(self.envelope())

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        values = (
            self.type,
            str(self.schema_version),
            str(self.event_id),
            str(self.version),
            str(self.position),
            self.correlation_id or "",
            self.tenant,
        )
        return [(name, value.encode()) for name, value in zip(HEADER_NAMES, values, strict=False)]


EVENT_COLUMNS = "position, tenant, session_id, version, event_id, type, schema_version, data, metadata, recorded_at"
"""The columns of `events` that recorded_from_row reads, for every SELECT of the log."""


def recorded_from_row(row: Mapping[str, Any]) -> RecordedEvent:
    """The one mapping of an `events` row (asyncpg Record or any mapping with EVENT_COLUMNS)
    to a RecordedEvent, shared by every reader of the table."""
    return RecordedEvent(
        position=row["position"],
        session_id=row["session_id"],
        version=row["version"],
        event_id=row["event_id"],
        type=row["type"],
        schema_version=row["schema_version"],
        data=row["data"],
        tenant=row["tenant"],
        recorded_at=row["recorded_at"],
        metadata=row["metadata"] or {},
    )


def from_envelope(value: bytes | dict[str, Any]) -> RecordedEvent:
    """Parse a Kafka record value (or an already-decoded envelope) back into a RecordedEvent."""
    env = orjson.loads(value) if isinstance(value, (bytes, bytearray, memoryview, str)) else value
    return RecordedEvent(
        position=int(env["position"]),
        session_id=env["session_id"],
        version=int(env["version"]),
        event_id=uuid.UUID(env["event_id"]),
        type=env["type"],
        schema_version=int(env["schema_version"]),
        data=env["data"],
        tenant=env["tenant"],
        recorded_at=datetime.fromisoformat(env["recorded_at"]),
        metadata=env.get("metadata") or {},
    )
