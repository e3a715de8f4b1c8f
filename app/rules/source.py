"""The rule set a process is running with. Reloading swaps it whole, and only for a good set:
good rule files, and (given a `TemplatesCheck`, such as `app.preview.lint.TemplateCheck`)
templates that render in time."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Protocol

from app.rules.bounds import DEFAULT_BOUNDS, Bounds
from app.rules.loader import (
    ParsedRules,
    RuleError,
    RuleSet,
    parse_rule_files,
    rule_files,
    rule_set,
)

log = logging.getLogger(__name__)

_Fingerprint = tuple[tuple[tuple[str, int, int], ...], tuple[tuple[str, int, int], ...]]


class TemplatesCheck(Protocol):
    """Whether the templates that parsed rules use render (`app.preview.lint.TemplateCheck`).

    Given, not imported: rendering needs mail, coupons, survey and tracking, which import
    the rules."""

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Changes whenever a template file does: part of `RulesSource.fingerprint`."""
        ...

    def errors(self, parsed: ParsedRules) -> list[RuleError]: ...


class RulesSource:
    def __init__(
        self,
        rules_dir: Path,
        *,
        templates: TemplatesCheck | None = None,
        bounds: Bounds = DEFAULT_BOUNDS,
    ) -> None:
        self.rules_dir = rules_dir
        self.templates = templates
        self.bounds = bounds
        self.current = RuleSet(rules=(), version="")
        self.errors: tuple[str, ...] = ()
        self.loaded = False
        # The version the queue was last brought in step with (app/jobs/missing_rules.py).
        self.queue_version: str | None = None
        self._attempted: _Fingerprint | None = None

    def fingerprint(self) -> _Fingerprint:
        """Names, sizes and modification times of the rule files and, when templates are
        checked, of the templates folder: cheap enough to poll every few seconds."""
        stats = []
        if self.rules_dir.is_dir():
            for path in rule_files(self.rules_dir):
                stat = path.stat()
                stats.append((path.name, stat.st_size, stat.st_mtime_ns))
        templates = self.templates.fingerprint() if self.templates is not None else ()
        return tuple(stats), templates

    async def watch(self, *, interval: float) -> None:
        """Reload whenever the folder changes, in every process that runs this task."""
        while True:
            await asyncio.sleep(interval)
            if await asyncio.to_thread(self.fingerprint) != self._attempted:
                await asyncio.to_thread(self.reload)

    def reload(self) -> bool:
        """Load the folder; keep the last good set when the new one has errors.

        A template edit alone also comes here (it changes the fingerprint): the rules stay
        as they are either way, and a template that no longer renders is reported in
        `errors` (GET /api/v1/rules, /readyz), while messages using it fail one by one at
        send time (`render_error`, `render_timeout`) instead of stalling the worker."""
        # Taken before reading, so an edit made during the load is seen by the next poll.
        self._attempted = self.fingerprint()
        parsed = parse_rule_files(self.rules_dir, bounds=self.bounds)
        # Templates are only worth rendering for rules that parse.
        checked = self.templates.errors(parsed) if self.templates and not parsed.errors else []
        candidate = rule_set(parsed, checked)
        self.errors = candidate.errors
        if candidate.errors:
            for error in candidate.errors:
                log.error("rules not loaded: %s", error)
            return False
        self.current = candidate
        self.loaded = True
        log.info("rules loaded: %d rules, version %s", len(candidate.rules), candidate.version)
        return True
