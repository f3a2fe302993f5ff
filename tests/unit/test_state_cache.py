"""The command API's state cache on its own: bounded by bytes, least recently used out, an entry
taken out while used, and bypassed when most of its hits turn out stale."""

from __future__ import annotations

import pytest

from commands import state_cache
from commands.state_cache import CachedState, StateCache
from eventstore.state import SessionState


def entry(version: int, size: int = 100) -> CachedState:
    return CachedState(SessionState.new("s", "t"), version, version * 10, size)


def test_take_removes_the_entry_and_counts_hits_and_misses():
    cache = StateCache(10_000)
    cache.put("t", "s1", entry(3))
    taken = cache.take("t", "s1")
    assert taken is not None and taken.version == 3
    assert cache.take("t", "s1") is None  # a second command at once reads the database
    assert (cache.hits, cache.misses, len(cache), cache.bytes) == (1, 1, 0, 0)


def test_entries_are_per_tenant():
    cache = StateCache(10_000)
    cache.put("t1", "s", entry(1))
    assert cache.take("t2", "s") is None
    assert cache.take("t1", "s") is not None


def test_put_replaces_an_entry_and_keeps_the_byte_count():
    cache = StateCache(10_000)
    cache.put("t", "s", entry(1, size=300))
    cache.put("t", "s", entry(2, size=500))
    assert (len(cache), cache.bytes) == (1, 500)
    assert cache.take("t", "s").version == 2


def test_the_least_recently_used_go_first_when_the_bytes_run_out():
    cache = StateCache(1_000)
    for i in range(4):
        cache.put("t", f"s{i}", entry(1, size=250))
    cache.put("t", "s0", cache.take("t", "s0"))  # s0 used again: s1 is now the oldest
    cache.put("t", "s4", entry(1, size=250))
    assert cache.bytes == 1_000
    assert cache.take("t", "s1") is None
    assert all(cache.take("t", f"s{i}") is not None for i in (0, 2, 3, 4))


def test_a_state_over_a_quarter_of_the_budget_is_not_kept_and_drops_its_old_entry():
    cache = StateCache(1_000)
    cache.put("t", "big", entry(1, size=200))
    cache.put("t", "big", entry(2, size=251))
    assert (len(cache), cache.bytes) == (0, 0)


def test_discard():
    cache = StateCache(1_000)
    cache.put("t", "s", entry(1))
    cache.discard("t", "s")
    cache.discard("t", "absent")
    assert (len(cache), cache.bytes) == (0, 0)


def test_a_zero_budget_keeps_nothing_and_a_negative_one_is_refused():
    cache = StateCache(0)
    cache.put("t", "s", entry(1, size=1))
    assert len(cache) == 0
    with pytest.raises(ValueError):
        StateCache(-1)


def hits(cache: StateCache, n: int, stale_every: int | None) -> None:
    for i in range(n):
        cache.put("t", "s", entry(i + 1))
        if cache.take("t", "s") is not None and stale_every and i % stale_every == 0:
            cache.stale_hit()


def test_mostly_stale_hits_bypass_the_cache_for_a_while_then_it_is_judged_again(monkeypatch):
    monkeypatch.setattr(state_cache, "WINDOW", 10)
    monkeypatch.setattr(state_cache, "BYPASS", 5)
    cache = StateCache(10_000)
    hits(cache, 10, stale_every=2)  # 5 of 10 stale: over 40 %
    cache.put("t", "s", entry(99))
    assert [cache.take("t", "s") for _ in range(5)] == [None] * 5
    assert cache.bypassed == 5
    assert cache.take("t", "s").version == 99  # judged again from here


def test_a_few_stale_hits_keep_the_cache_in_use(monkeypatch):
    monkeypatch.setattr(state_cache, "WINDOW", 10)
    cache = StateCache(10_000)
    hits(cache, 30, stale_every=3)  # 4 of each 10: not over 40 %
    assert cache.bypassed == 0 and cache.stale == 10 and cache.hits == 30
