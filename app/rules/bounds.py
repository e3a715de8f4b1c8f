"""How much of a rules folder a process loads (RULES_MAX_BYTES, RULES_MAX_COUNT): above
either, the folder is refused and the last good set kept (docs/rules.md)."""

from __future__ import annotations

from dataclasses import dataclass

# The defaults: far above any shop's rules (the shipped set is a few kilobytes), far below
# what would stall a process (a 5 MB file of 42k rules took 55 s and ~1 GB to load, in every
# process).
MAX_BYTES = 2 * 1024 * 1024
MAX_COUNT = 2_000


@dataclass(frozen=True)
class Bounds:
    max_bytes: int = MAX_BYTES
    max_count: int = MAX_COUNT


DEFAULT_BOUNDS = Bounds()
