"""A progress bar for long commands (rebuild, import, simulate) on stderr, no dependency."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int | None, what: str, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.what = what
        self.done = 0
        self.stream = stream
        self.started = time.monotonic()
        self._shown = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._shown >= 0.25:
            self._shown = now
            self._draw()

    def _draw(self, end: str = "") -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        speed = self.done / elapsed
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            line = f"\r[{bar:<30}] {share:6.1%} {self.done}/{self.total} {self.what}"
        else:
            line = f"\r{self.done} {self.what}"
        self.stream.write(f"{line}  {speed:,.0f}/s{end}")
        self.stream.flush()

    def finish(self) -> None:
        self._draw(end="\n")
