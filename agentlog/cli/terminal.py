"""What the time-travel commands print for people: aligned tables, colour only on a terminal.

Invariant: colour codes are written only when the stream is a TTY, so piped output, files and the
executed docs see plain text; `--json` output never passes through here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


class Terminal:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.colour = self.stream.isatty()

    def style(self, text: str, *styles: str) -> str:
        if not self.colour or not styles:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def line(self, text: str = "") -> None:
        print(text, file=self.stream)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, styles: Sequence[str] = ()) -> None:
        """Columns padded to their widest cell; the last column is never padded. `styles[i]`
        colours column i (on a terminal)."""
        cells = [[str(c) for c in headers], *([("" if c is None else str(c)) for c in row] for row in rows)]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for n, row in enumerate(cells):
            parts = []
            for i, cell in enumerate(row):
                text = cell if i == len(row) - 1 else cell.ljust(widths[i])
                style = "bold" if n == 0 else (styles[i] if i < len(styles) else "")
                parts.append(self.style(text, style) if style else text)
            self.line("  ".join(parts).rstrip())
