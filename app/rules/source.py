"""The rule set a process is running with. Reloading swaps it whole, and only for a good set."""

from __future__ import annotations

import logging
from pathlib import Path

from app.rules.loader import RuleSet, load_rules

log = logging.getLogger(__name__)


class RulesSource:
    def __init__(self, rules_dir: Path) -> None:
        self.rules_dir = rules_dir
        self.current = RuleSet(rules=(), version="")
        self.errors: tuple[str, ...] = ()
        self.loaded = False

    def reload(self) -> bool:
        """Load the folder; keep the last good set when the new one has errors."""
        candidate = load_rules(self.rules_dir)
        self.errors = candidate.errors
        if candidate.errors:
            for error in candidate.errors:
                log.error("rules not loaded: %s", error)
            return False
        self.current = candidate
        self.loaded = True
        log.info("rules loaded: %d rules, version %s", len(candidate.rules), candidate.version)
        return True
