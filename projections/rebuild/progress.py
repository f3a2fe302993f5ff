"""The progress line of `agentlog projections rebuild` on stderr: events done / total, rate, ETA.

Invariant: output goes to the given stream only (stderr in the CLI), so stdout stays the command's
result (`--json`); on a terminal the line is redrawn in place, elsewhere (logs, CI) one line is
written at most every `interval` seconds, so a long rebuild does not flood a log file.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from projections.rebuild.job import RebuildProgress

BAR_WIDTH = 24


def render(progress: RebuildProgress) -> str:
    """`summaries [#####.......]  1200/5000 events  24%  3100 ev/s  ETA 0:00:01`."""
    total = max(progress.events_total, progress.events_done, 1)
    share = progress.events_done / total
    filled = int(share * BAR_WIDTH)
    rate = progress.rate
    left = (total - progress.events_done) / rate if rate > 0 else None
    eta = _clock(left) if left is not None else "?"
    return (
        f"{progress.projection} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
        f"{progress.events_done}/{total} events {share:4.0%}  {rate:,.0f} ev/s  ETA {eta}"
    )


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class ProgressLine:
    """A callback for ProjectionRebuild(on_progress=...); call `finish()` once at the end."""

    def __init__(
        self, stream: TextIO | None = None, interval: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._interval = interval
        self._clock = clock
        # None = nothing written yet: the first update is always shown (monotonic time starts
        # near zero on a freshly booted machine, so a 0.0 sentinel would hide it).
        self._last: float | None = None
        self._shown: RebuildProgress | None = None

    def __call__(self, progress: RebuildProgress) -> None:
        self._shown = progress
        now = self._clock()
        if self._tty:
            self._stream.write("\r" + render(progress) + "\x1b[K")
            self._stream.flush()
        elif self._last is None or now - self._last >= self._interval:
            self._last = now
            self._stream.write(render(progress) + "\n")
            self._stream.flush()

    def finish(self, message: str) -> None:
        if self._tty and self._shown is not None:
            self._stream.write("\n")
        self._stream.write(message + "\n")
        self._stream.flush()
