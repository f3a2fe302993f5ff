"""The progress of `agentlog projections rebuild` on stderr: events done / total, rate, ETA, phase.

Invariant: output goes to the given stream only (stderr in the CLI), so stdout stays the command's
result (`--json`). On a terminal it is a rich progress bar redrawn in place; elsewhere (logs, CI)
whole lines: one at most every `interval` seconds while building, and one at each phase change
(verifying, swapping), so a long rebuild does not flood a log file.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from projections.rebuild.job import RebuildProgress

BAR_WIDTH = 24


def eta(progress: RebuildProgress) -> str:
    total = max(progress.events_total, progress.events_done, 1)
    rate = progress.rate
    return _clock((total - progress.events_done) / rate) if rate > 0 else "?"


def render(progress: RebuildProgress) -> str:
    """`summaries [#####.......]  1200/5000 events  24%  3100 ev/s  ETA 0:00:01`."""
    total = max(progress.events_total, progress.events_done, 1)
    share = progress.events_done / total
    filled = int(share * BAR_WIDTH)
    line = (
        f"{progress.projection} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
        f"{progress.events_done}/{total} events {share:4.0%}  {progress.rate:,.0f} ev/s  ETA {eta(progress)}"
    )
    return line if progress.phase == "building" else f"{line}  ({progress.phase})"


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
        self._phase = "building"
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, progress: RebuildProgress) -> None:
        if self._tty:
            self._draw(progress)
            return
        now = self._clock()
        if self._last is None or now - self._last >= self._interval or progress.phase != self._phase:
            self._last, self._phase = now, progress.phase
            self._stream.write(render(progress) + "\n")
            self._stream.flush()

    def _draw(self, progress: RebuildProgress) -> None:
        description = f"{progress.projection} ({progress.phase})"
        total = max(progress.events_total, progress.events_done, 1)
        rate, left = f"{progress.rate:,.0f} ev/s", eta(progress)
        if self._bar is None:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} events {task.percentage:>3.0f}%"),
                TextColumn("{task.fields[rate]}  ETA {task.fields[eta]}"),
                console=Console(file=self._stream),
            )
            self._bar.start()
            self._task = self._bar.add_task(
                description, total=total, completed=progress.events_done, rate=rate, eta=left
            )
        else:
            assert self._task is not None
            self._bar.update(
                self._task, description=description, total=total, completed=progress.events_done, rate=rate, eta=left
            )

    def finish(self, message: str) -> None:
        if self._bar is not None:
            self._bar.stop()
        self._stream.write(message + "\n")
        self._stream.flush()
