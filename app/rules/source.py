"""The rule set a process is running with. Reloading swaps it whole, and only for a good set."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from app.rules.loader import DEFAULT_BOUNDS, Bounds, RuleSet, load_rules, rule_files

log = logging.getLogger(__name__)


class RulesSource:
    def __init__(self, rules_dir: Path, *, bounds: Bounds = DEFAULT_BOUNDS) -> None:
        self.rules_dir = rules_dir
        self.bounds = bounds
        self.current = RuleSet(rules=(), version="")
        self.errors: tuple[str, ...] = ()
        self.loaded = False
        # Rules dropped by a reload whose waiting messages are still to be cancelled.
        self.removed: set[str] = set()
        self._attempted: tuple[tuple[str, int, int], ...] | None = None

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Names, sizes and modification times: cheap enough to poll every few seconds."""
        if not self.rules_dir.is_dir():
            return ()
        stats = []
        for path in rule_files(self.rules_dir):
            stat = path.stat()
            stats.append((path.name, stat.st_size, stat.st_mtime_ns))
        return tuple(stats)

    async def watch(self, *, interval: float) -> None:
        """Reload whenever the folder changes, in every process that runs this task."""
        while True:
            await asyncio.sleep(interval)
            if await asyncio.to_thread(self.fingerprint) != self._attempted:
                await asyncio.to_thread(self.reload)

    def reload(self) -> bool:
        """Load the folder; keep the last good set when the new one has errors."""
        # Taken before reading, so an edit made during the load is seen by the next poll.
        self._attempted = self.fingerprint()
        candidate = load_rules(self.rules_dir, bounds=self.bounds)
        self.errors = candidate.errors
        if candidate.errors:
            for error in candidate.errors:
                log.error("rules not loaded: %s", error)
            return False
        if self.loaded:
            kept = {rule.id for rule in candidate.rules}
            dropped = {rule.id for rule in self.current.rules} - kept
            self.removed = (self.removed | dropped) - kept
        self.current = candidate
        self.loaded = True
        log.info("rules loaded: %d rules, version %s", len(candidate.rules), candidate.version)
        return True
