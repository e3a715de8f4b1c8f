"""Reads `rules/*.yaml` into an immutable RuleSet. Reading files is the only I/O in rules/."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from app.rules.bounds import DEFAULT_BOUNDS, Bounds
from app.rules.model import Defaults, Kind, Limit, Rule, RuleFile, reward_rule
from app.rules.positions import Position, YamlPositions, yaml_error_position


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    version: str
    errors: tuple[str, ...] = field(default=())
    # Per customer, across every rule of a kind (`limits:` in any file).
    limits: Mapping[str, Limit] = field(default_factory=dict)
    # Rule id -> the file it was read from (the console shows it; the API does not).
    files: Mapping[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Looked up per message at send time: index once, not a scan each time. A survey's
        # reward mail is sent under a rule derived from it, found here and nowhere else (it
        # matches no event).
        rewards = [found for rule in self.rules if (found := reward_rule(rule)) is not None]
        object.__setattr__(self, "_by_id", {rule.id: rule for rule in [*self.rules, *rewards]})
        # Asked for on every event and job: grouped once.
        by_event: dict[str, tuple[Rule, ...]] = {}
        for rule in self.rules:
            by_event[rule.when.event] = (*by_event.get(rule.when.event, ()), rule)
        object.__setattr__(self, "_by_event", by_event)

    def by_id(self, rule_id: str) -> Rule | None:
        by_id: dict[str, Rule] = self.__dict__["_by_id"]
        return by_id.get(rule_id)

    @property
    def sending_rule_ids(self) -> set[str]:
        """Every rule id a waiting message may be sent under: the rules and their rewards."""
        by_id: dict[str, Rule] = self.__dict__["_by_id"]
        return set(by_id)

    def for_event(self, event: str) -> tuple[Rule, ...]:
        by_event: dict[str, tuple[Rule, ...]] = self.__dict__["_by_event"]
        return by_event.get(event, ())

    @cached_property
    def anchored(self) -> RuleSet:
        """The rules with a date anchor (the anchor job re-plans these alone)."""
        anchored = tuple(rule for rule in self.rules if rule.send.anchor is not None)
        return RuleSet(rules=anchored, version=self.version)

    @cached_property
    def reading_history(self) -> RuleSet:
        """The rules whose match makes planning read the customer's past orders: learned
        timing, skipping on a rebuy, and the first purchase in a category."""
        found = tuple(
            rule
            for rule in self.rules
            if rule.send.learned or rule.checks_rebuy or rule.when.first_in_category is not None
        )
        return RuleSet(rules=found, version=self.version)

    @cached_property
    def reading_totals(self) -> frozenset[str]:
        """The events whose rules match on the customer's order count or spending."""
        return frozenset(
            rule.when.event
            for rule in self.rules
            if rule.when.customer is not None and rule.when.customer.needs_totals
        )

    @property
    def marketing_rule_ids(self) -> list[str]:
        return [rule.id for rule in self.rules if rule.kind == "marketing"]


_Model = TypeVar("_Model", bound=BaseModel)


@dataclass(frozen=True)
class RuleError:
    """One problem in a rule file, where an editor can jump to it."""

    file: Path
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


@dataclass
class ParsedRules:
    rules: list[tuple[Rule, Path, YamlPositions, int]]
    errors: list[RuleError]
    limits: dict[str, Limit] = field(default_factory=dict)
    # Of every file's name and text, as read: the rule set's version.
    digest: Any = field(default_factory=hashlib.sha256)
    counted: int = 0
    over_count: bool = False


def load_rules(rules_dir: Path, *, bounds: Bounds = DEFAULT_BOUNDS) -> RuleSet:
    """Load every rule file; errors are collected, never raised, so callers can report all."""
    return rule_set(parse_rule_files(rules_dir, bounds=bounds))


def rule_set(parsed: ParsedRules, more_errors: Sequence[RuleError] = ()) -> RuleSet:
    """The set of parsed rule files, with their errors and any found by other checks."""
    return RuleSet(
        rules=tuple(rule for rule, *_ in parsed.rules),
        version=parsed.digest.hexdigest()[:16],
        errors=tuple(str(error) for error in [*parsed.errors, *more_errors]),
        limits=dict(parsed.limits),
        files={rule.id: path for rule, path, *_ in parsed.rules},
    )


def rule_files(rules_dir: Path) -> list[Path]:
    return sorted([*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")])


def parse_rule_files(rules_dir: Path, *, bounds: Bounds = DEFAULT_BOUNDS) -> ParsedRules:
    """Every rule with where it was written, and every error with its file:line:col."""
    result = ParsedRules(rules=[], errors=[])
    if not rules_dir.is_dir():
        result.errors.append(RuleError(rules_dir, 1, 1, "rules folder not found"))
        return result
    files = rule_files(rules_dir)
    # Sizes before reading: an oversized folder costs a stat per file, not a parse.
    size = sum(path.stat().st_size for path in files)
    if size > bounds.max_bytes:
        result.errors.append(
            RuleError(
                rules_dir,
                1,
                1,
                f"the rule files hold {size:,} bytes, over RULES_MAX_BYTES "
                f"({bounds.max_bytes:,}); split the folder or raise the setting",
            )
        )
        return result
    for path in files:
        text = path.read_text(encoding="utf-8")
        result.digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")
        _parse_file(path, text, result, bounds=bounds)
        if result.over_count:
            break
    first_seen: dict[str, Path] = {}
    for rule, path, positions, index in result.rules:
        if rule.id in first_seen:
            where = positions.locate(("rules", index, "id"))
            result.errors.append(
                RuleError(
                    path,
                    where.line,
                    where.column,
                    f"rule id {rule.id!r} is already defined in {first_seen[rule.id].name}",
                )
            )
        first_seen.setdefault(rule.id, path)
    _check_renames(result, first_seen)
    return result


def _check_renames(result: ParsedRules, live: Mapping[str, Path]) -> None:
    """An old id is taken over by one rule, and only when no rule has that id now (else
    its messages would have two owners)."""
    claimed: dict[str, str] = {}
    for rule, path, positions, index in result.rules:
        for number, old in enumerate(rule.renamed_from):
            where = positions.locate(("rules", index, "renamed_from", number))
            problem = None
            if old in live:
                problem = (
                    f"renamed_from {old!r}: a rule has this id now ({live[old].name}); "
                    "remove it from renamed_from, or rename that rule"
                )
            elif claimed.setdefault(old, rule.id) != rule.id:
                problem = f"renamed_from {old!r}: rule {claimed[old]!r} takes it over already"
            if problem is not None:
                result.errors.append(RuleError(path, where.line, where.column, problem))


def _parse_file(path: Path, text: str, result: ParsedRules, *, bounds: Bounds) -> None:
    try:
        positions = YamlPositions.from_text(text)
        # safe_load: rule files are data, a Python tag must never build an object.
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = yaml_error_position(exc) or Position(1, 1)
        problem = getattr(exc, "problem", None) or str(exc)
        result.errors.append(RuleError(path, where.line, where.column, f"invalid YAML: {problem}"))
        return
    for duplicate in positions.duplicate_keys():
        # safe_load kept only the last value: one of two `send:` keys would vanish unseen.
        result.errors.append(
            RuleError(
                path,
                duplicate.again.line,
                duplicate.again.column,
                f"duplicate key {duplicate.key!r} (first at line {duplicate.first.line}); "
                "only one may be given",
            )
        )
    if raw is None:
        return
    if not isinstance(raw, dict):
        result.errors.append(RuleError(path, 1, 1, "expected a mapping with a 'rules' list"))
        return
    # Each part is validated on its own, so one bad rule does not hide the others' errors.
    defaults = _validated(
        Defaults, raw.get("defaults") or {}, ("defaults",), path, positions, result
    )
    envelope = {key: value for key, value in raw.items() if key not in ("rules", "defaults")}
    envelope_model = _validated(RuleFile, envelope, (), path, positions, result)
    if envelope_model is not None:
        _merge_limits(envelope_model.limits, path, positions, result)
    raw_rules = raw.get("rules") or []
    if not isinstance(raw_rules, list):
        where = positions.locate(("rules",))
        result.errors.append(RuleError(path, where.line, where.column, "'rules' must be a list"))
        return
    # Counted before validating: past the bound, validating the rest is the cost to avoid.
    result.counted += len(raw_rules)
    if result.counted > bounds.max_count:
        where = positions.locate(("rules",))
        result.errors.append(
            RuleError(
                path,
                where.line,
                where.column,
                f"more than RULES_MAX_COUNT ({bounds.max_count:,}) rules: {result.counted:,} "
                "so far; remove some or raise the setting",
            )
        )
        result.over_count = True
        return
    for index, item in enumerate(raw_rules):
        merged = _with_defaults(item, defaults) if defaults is not None else item
        rule = _validated(Rule, merged, ("rules", index), path, positions, result)
        if rule is not None:
            result.rules.append((rule, path, positions, index))


def _merge_limits(
    limits: Mapping[Kind, Limit], path: Path, positions: YamlPositions, result: ParsedRules
) -> None:
    """Limits are global: several files may repeat one, but never disagree about it."""
    for kind, limit in limits.items():
        known = result.limits.setdefault(kind, limit)
        if known != limit:
            where = positions.locate(("limits", kind))
            result.errors.append(
                RuleError(
                    path,
                    where.line,
                    where.column,
                    f"limits.{kind} is {limit.max} per {limit.per} here but "
                    f"{known.max} per {known.per} in another file; give it once",
                )
            )


def _validated(
    model: type[_Model],
    data: Any,
    prefix: tuple[str | int, ...],
    path: Path,
    positions: YamlPositions,
    result: ParsedRules,
) -> _Model | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            # "[key]" marks an error in a mapping's key: the key itself is the location.
            location = prefix + tuple(
                part for part in error["loc"] if isinstance(part, str | int) and part != "[key]"
            )
            if "[key]" in error["loc"]:
                where = positions.locate_key(location)
                message = f"{'.'.join(str(part) for part in location)}: {error['msg']}"
            elif error["type"] == "extra_forbidden":
                where = positions.locate_key(location)
                message = f"unknown key {location[-1]!r} (a typo?)"
            else:
                where = positions.locate(location)
                field = ".".join(str(part) for part in location)
                message = f"{field}: {error['msg']}"
            result.errors.append(RuleError(path, where.line, where.column, message))
        return None


def _with_defaults(item: Any, defaults: Defaults) -> Any:
    if not isinstance(item, dict):
        return item
    merged = dict(item)
    if defaults.kind is not None:
        merged.setdefault("kind", defaults.kind)
    if defaults.send_window is not None:
        # A rule's own `send_window: null` is kept: it opts out of the file's window.
        merged.setdefault("send_window", defaults.send_window.model_dump(exclude_none=True))
    return merged
