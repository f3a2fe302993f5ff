"""The command API's cache of the states it appended last: a command on a session this process
wrote last is decided without reading the session back (one round trip instead of two).

Invariant: the cache can make a command cheaper, never change its answer. A cached entry is the
state this process appended at a version; the append of the next command is conditional on that
version, so a state another writer moved on (another process, a fork, a race) makes the append
fail with a version conflict, and the handler decides again on the state it then reads. Only a
committed append is trusted: an entry is taken out while a command uses it (two commands on one
session at once: the second reads the database) and put back only with the state that append
wrote; a refusal, a no-op or an If-Match that does not match the cached version is decided again
on a fresh read before it is answered. A stream row changes only through a versioned append
(eventstore/store.py; imports create new streams), so a state at the version the cache holds is
the state the cache holds.

The size is bounded by the states' JSON bytes (the snapshot the append wrote), least recently
used first out; one state over a quarter of the budget is not kept.

A stale hit costs more than a miss (a decision and a refused append before the read). Where a
session's commands reach several processes at random (workers > 1 behind a balancer that does not
keep a client on one process), most hits are stale: when more than 40 % of a window of WINDOW
hits were (about where the stale ones' cost eats what the good ones save), the cache is bypassed
for the next BYPASS lookups (counted as such), then judged again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from eventstore.state import SessionState

DEFAULT_BYTES = 32 * 1024 * 1024
WINDOW = 256  # hits judged together
BYPASS = 4096  # lookups answered "read it" after a window with more stale hits than good ones


@dataclass(frozen=True, slots=True)
class CachedState:
    state: SessionState  # never mutated (eventstore/state.py): safe to decide on again
    version: int
    position: int
    size: int  # bytes of its JSON snapshot: the cache's weight


class StateCache:
    """LRU of (tenant, session) -> CachedState, bounded by `max_bytes` of snapshot JSON."""

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], CachedState] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.stale = 0  # hits whose version had moved on (or that had to be decided again)
        self.bypassed = 0  # lookups not made while the cache was judged not worth it
        self._window_hits = 0
        self._window_stale = 0
        self._bypass_left = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def take(self, tenant: str, session_id: str) -> CachedState | None:
        """The entry, removed: the caller puts back what its append wrote, or nothing; after the
        caller found it stale, it says so (`stale_hit`)."""
        if self._bypass_left:
            self._bypass_left -= 1
            self.bypassed += 1
            return None
        entry = self._entries.pop((tenant, session_id), None)
        if entry is None:
            self.misses += 1
            return None
        self._bytes -= entry.size
        self.hits += 1
        self._window_hits += 1
        if self._window_hits >= WINDOW:
            if self._window_stale * 5 > self._window_hits * 2:  # over 40 %
                self._bypass_left = BYPASS
            self._window_hits = self._window_stale = 0
        return entry

    def stale_hit(self) -> None:
        """The entry last taken was not the session's state: its command is decided on a read."""
        self.stale += 1
        self._window_stale += 1

    def put(self, tenant: str, session_id: str, entry: CachedState) -> None:
        key = (tenant, session_id)
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        if entry.size * 4 > self.max_bytes:
            return
        self._entries[key] = entry
        self._bytes += entry.size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size

    def discard(self, tenant: str, session_id: str) -> None:
        entry = self._entries.pop((tenant, session_id), None)
        if entry is not None:
            self._bytes -= entry.size
