"""Reads `rules/*.yaml` into an immutable RuleSet. Reading files is the only I/O in rules/."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.rules.model import Defaults, Rule, RuleFile


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    version: str
    errors: tuple[str, ...] = field(default=())

    def by_id(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def for_event(self, event: str) -> list[Rule]:
        return [rule for rule in self.rules if rule.when.event == event]


def load_rules(rules_dir: Path) -> RuleSet:
    """Load every rule file; errors are collected, never raised, so callers can report all."""
    errors: list[str] = []
    rules: list[Rule] = []
    digest = hashlib.sha256()
    if not rules_dir.is_dir():
        return RuleSet(rules=(), version="", errors=(f"{rules_dir}: rules folder not found",))
    for path in sorted([*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")]):
        text = path.read_text(encoding="utf-8")
        digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")
        rules.extend(_parse_file(path, text, errors))
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            errors.append(f"rule id {rule.id!r} is defined more than once")
        seen.add(rule.id)
    return RuleSet(rules=tuple(rules), version=digest.hexdigest()[:16], errors=tuple(errors))


def _parse_file(path: Path, text: str, errors: list[str]) -> list[Rule]:
    try:
        # safe_load: rule files are data, a Python tag must never build an object.
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        errors.append(f"{path}: {exc}")
        return []
    if raw is None:
        return []
    if not isinstance(raw, dict):
        errors.append(f"{path}: expected a mapping with a 'rules' list")
        return []
    try:
        defaults = Defaults.model_validate(raw.get("defaults") or {})
        raw_rules = [_with_defaults(item, defaults) for item in raw.get("rules") or []]
        parsed = RuleFile.model_validate({**raw, "rules": raw_rules})
    except ValidationError as exc:
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"])
            errors.append(f"{path}: {location}: {error['msg']}")
        return []
    return list(parsed.rules)


def _with_defaults(item: Any, defaults: Defaults) -> Any:
    if not isinstance(item, dict):
        return item
    merged = dict(item)
    if defaults.kind is not None:
        merged.setdefault("kind", defaults.kind)
    return merged
