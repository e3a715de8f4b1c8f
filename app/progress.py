"""A one-line progress bar for a terminal: plain `\\r` redraws, at most ten a second."""

from __future__ import annotations

import time
from typing import TextIO

_WIDTH = 30


class ProgressBar:
    def __init__(self, stream: TextIO, *, min_interval: float = 0.1) -> None:
        self._stream = stream
        self._min_interval = min_interval
        self._last = float("-inf")
        self._shown = 0

    def update(self, label: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < self._min_interval:
            return
        self._last = now
        filled = _WIDTH * done // total if total else _WIDTH
        text = f"{label} [{'#' * filled}{'.' * (_WIDTH - filled)}] {done:,}/{total:,}"
        # Padded to the longest line drawn, so a shorter one leaves no tail behind.
        self._stream.write("\r" + text.ljust(self._shown))
        self._stream.flush()
        self._shown = max(self._shown, len(text))

    def close(self) -> None:
        """Erase the bar, so what follows starts on a clean line."""
        if self._shown:
            self._stream.write("\r" + " " * self._shown + "\r")
            self._stream.flush()
            self._shown = 0
