"""Pausing the garbage collector for answers as large as a session (eventstore/large_reads.py):
overlapping pauses keep it paused until the last ends, and it comes back as it was found."""

from __future__ import annotations

import gc

import pytest

from eventstore.large_reads import gc_paused


def test_overlapping_pauses_resume_the_collector_when_the_last_ends_even_on_error():
    assert gc.isenabled()
    first, second = gc_paused(), gc_paused()
    first.__enter__()
    second.__enter__()
    assert not gc.isenabled()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second still reads
    with pytest.raises(ValueError), gc_paused():
        raise ValueError("boom")
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled():
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
