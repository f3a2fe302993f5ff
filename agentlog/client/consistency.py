"""Read-your-writes: what this client wrote last, so its next read waits until the read models
show it.

Invariant: after a successful write answers version V of session S (at global position P), a
session query about S asks for `min_version >= V`, and a query across sessions asks for
`min_position >= P` of the latest write; versions only move forward. The memory is bounded: past
`max_sessions` the sessions written longest ago are forgotten (a read of them then waits for
nothing, as a fresh client's would).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from agentlog.client.models import WriteResult

MAX_SESSIONS = 10_000


class ReadYourWrites:
    """Safe to share between threads (the sync client may be)."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._max_sessions = max_sessions
        self._versions: OrderedDict[str, int] = OrderedDict()
        self._position: int | None = None
        self._lock = threading.Lock()

    def record(self, result: WriteResult) -> None:
        if result.version < 1:
            return
        with self._lock:
            known = self._versions.pop(result.session_id, 0)
            self._versions[result.session_id] = max(known, result.version)
            while len(self._versions) > self._max_sessions:
                self._versions.popitem(last=False)
            if result.position >= 1 and (self._position is None or result.position > self._position):
                self._position = result.position

    def min_version(self, session_id: str) -> int | None:
        with self._lock:
            return self._versions.get(session_id)

    def min_position(self) -> int | None:
        with self._lock:
            return self._position
