"""The rules folder's lint, rule by rule: what the console's rules page shows.

The same check as `aftersale rules check` (`parse_rule_files`, then `TemplateCheck`), with
each problem put with the rule whose lines it is on; a problem outside every rule (bad YAML,
a file's `limits`) stays with its file. The linter knows errors only: there is no warning
level, so a rule is either clean or has errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.preview.lint import TemplateCheck
from app.rules.bounds import DEFAULT_BOUNDS, Bounds
from app.rules.loader import ParsedRules, RuleError, parse_rule_files


@dataclass(frozen=True)
class RuleSource:
    """Where one rule is written: its file and its lines (`last` inclusive, None: to the end)."""

    file: Path
    first: int
    last: int | None
    errors: list[RuleError] = field(default_factory=list)


@dataclass(frozen=True)
class FolderLint:
    rules: dict[str, RuleSource]
    # Problems on no rule's lines (a file that does not parse, a file-wide key).
    other: list[RuleError]

    @property
    def count(self) -> int:
        return sum(len(found.errors) for found in self.rules.values()) + len(self.other)


def lint_folder(
    rules_dir: Path, *, check: TemplateCheck, bounds: Bounds = DEFAULT_BOUNDS
) -> FolderLint:
    """Every problem `aftersale rules check` reports for `rules_dir`, by rule. Reads files and
    renders templates: call it off the event loop."""
    parsed = parse_rule_files(rules_dir, bounds=bounds)
    return by_rule(parsed, [*parsed.errors, *check.errors(parsed)])


def by_rule(parsed: ParsedRules, errors: Sequence[RuleError]) -> FolderLint:
    """Each error with the rule whose lines hold it: from the rule's `- ` item to the next."""
    rules: dict[str, RuleSource] = {}
    for rule, path, positions, index in parsed.rules:
        first = positions.locate(("rules", index)).line
        # The next item, valid or not; without one, `locate` stops at an earlier node.
        following = positions.locate(("rules", index + 1)).line
        last = following - 1 if following > first else None
        # A repeated id (itself an error) keeps the first rule's lines.
        rules.setdefault(rule.id, RuleSource(file=path, first=first, last=last))
    other = []
    for error in errors:
        owner = next(
            (
                source
                for source in rules.values()
                if source.file == error.file
                and source.first <= error.line
                and (source.last is None or error.line <= source.last)
            ),
            None,
        )
        if owner is None:
            other.append(error)
        else:
            owner.errors.append(error)
    return FolderLint(rules=rules, other=other)


def source_lines(source: RuleSource) -> str:
    """The rule's own lines of its file, as written; "" when the file cannot be read."""
    try:
        lines = source.file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    end = len(lines) if source.last is None else source.last
    return "\n".join(lines[source.first - 1 : end]).rstrip() + "\n"
