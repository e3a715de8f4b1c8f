"""What every `aftersale ... import FILE` command tells its user, beside the progress bar
(`app.progress`): the lines it could not take, and the error for a file it cannot import at
all. One home, so the order history, the catalog and simulate report alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# (stage, done, total), as `ProgressBar.update` takes it.
Progress = Callable[[str, int, int], None]


class ImportFileError(ValueError):
    """A file that cannot be imported at all; the message is worded for the user."""


@dataclass(frozen=True)
class BadLine:
    """A line (its number, from 1) that was refused, and why: named fields, not values."""

    line: int
    message: str
