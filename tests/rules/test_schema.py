"""`aftersale rules schema`: a draft 2020-12 JSON Schema that the shipped rules satisfy."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from app.cli import main
from app.config import ROOT
from app.rules.durations import DURATION_PATTERN, RANGE_PATTERN, parse_duration, parse_range


def printed_schema(capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["rules", "schema"]) == 0
    return json.loads(capsys.readouterr().out)


def test_schema_is_valid_draft_2020_12(capsys: pytest.CaptureFixture[str]) -> None:
    schema = printed_schema(capsys)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    rule = schema["$defs"]["Rule"]
    assert rule["additionalProperties"] is False  # typos are flagged in the editor too
    assert "description" in rule["properties"]["skip_if"]


@pytest.mark.parametrize("path", sorted((ROOT / "rules").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_rule_file_validates(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    validator = Draft202012Validator(printed_schema(capsys))
    errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
    assert errors == []


def test_schema_catches_a_typo(capsys: pytest.CaptureFixture[str]) -> None:
    validator = Draft202012Validator(printed_schema(capsys))
    bad = {"rules": [{"id": "x", "when": {"event": "order.created"}, "tempalte": "t"}]}
    messages = [error.message for error in validator.iter_errors(bad)]
    assert any("tempalte" in message for message in messages)


def _properties(node: object, path: str = "") -> list[tuple[str, dict]]:
    """Every property schema anywhere in `node`, with a readable path to it."""
    found: list[tuple[str, dict]] = []
    if isinstance(node, dict):
        for name, schema in (node.get("properties") or {}).items():
            found.append((f"{path}.{name}", schema))
        for key, value in node.items():
            found += _properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _properties(value, f"{path}[{index}]")
    return found


def test_every_property_has_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    properties = _properties(printed_schema(capsys))
    assert len(properties) > 60  # every model's fields, not an empty walk
    missing = [path for path, schema in properties if not str(schema.get("description", ""))]
    assert missing == []


def _rule_with(send: dict) -> dict:
    return {"rules": [{"id": "x", "when": {"event": "order.created"}, "template": "t", **send}]}


@pytest.mark.parametrize(
    ("send", "valid"),
    [
        ({"after": "2w"}, True),
        ({"after": "1w..2w"}, True),
        ({"after": "3mo"}, True),
        ({"after": "1y6mo"}, True),
        ({"after": "0m"}, True),
        ({"after": "2 weeks"}, False),
        ({"after": "1.5d"}, False),
        ({"after": "3M"}, False),
        ({"after": "5"}, False),
        ({"after": "1w..2w..3w"}, False),
        ({"expires": "5d"}, True),
        ({"expires": "2 weeks"}, False),
        ({"expires": "1w..2w"}, False),  # a single duration, not a range
        ({"at": "-3d"}, True),
        ({"learned": {"fallback": "4w..5w", "lead": "1.5d"}}, False),
        ({"supply": {"days_per_unit": 75, "lead": "7d"}}, True),
    ],
)
def test_durations_have_the_parsers_pattern(
    capsys: pytest.CaptureFixture[str], send: dict, valid: bool
) -> None:
    validator = Draft202012Validator(printed_schema(capsys))
    assert validator.is_valid(_rule_with({"send": send})) is valid


def test_limit_spans_have_the_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    validator = Draft202012Validator(printed_schema(capsys))
    assert validator.is_valid({"limits": {"marketing": {"max": 2, "per": "7d"}}})
    assert not validator.is_valid({"limits": {"marketing": {"max": 2, "per": "1 week"}}})


def _accepts(parse: object, text: str) -> bool:
    try:
        parse(text)  # type: ignore[operator]
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("pattern", "parse"),
    [(DURATION_PATTERN, parse_duration), (RANGE_PATTERN, parse_range)],
    ids=["duration", "range"],
)
def test_patterns_accept_exactly_what_the_parser_accepts(pattern: str, parse: object) -> None:
    # Reversed ranges are a check beyond the pattern: compare only the shape of the text.
    def shape_ok(text: str) -> bool:
        return _accepts(parse, text) or (
            parse is parse_range
            and all(_accepts(parse_duration, part) for part in text.split("..", 1))
        )

    compiled = re.compile(pattern)
    generator = random.Random(17)
    alphabet = ["1", "0", "2", " ", "\t", "m", "o", "y", "w", "d", "h", "+", "-", ".", "..", "M"]
    texts = ["2w", " 1y 6mo ", "2 w", "m o", "1m o", "1 0d", "+ 5d", "- 5d", "5\td", "\t5d\n"]
    texts += ["1w .. 2w", "1w. .2w", "1w..\t2w", "2w..1w", "\u0663d", "5d\n", "1w..", "..2w"]
    texts += [
        "".join(generator.choices(alphabet, k=generator.randint(0, 7))) for _ in range(20_000)
    ]
    # Whole parts too, so that valid durations and ranges (and near misses) are common.
    parts = ["1w", "2w", "3mo", "1y6mo", "0m", "36h", " ", "..", ".", "-", "+", "1", "d", "\t"]
    texts += ["".join(generator.choices(parts, k=generator.randint(1, 5))) for _ in range(20_000)]
    matched = [text for text in texts if compiled.search(text) is not None]
    assert len(matched) > 1000
    assert parse is parse_duration or sum(".." in text for text in matched) > 200
    disagree = [text for text in texts if (compiled.search(text) is not None) != shape_ok(text)]
    assert disagree == []


def test_the_committed_schema_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    committed = json.loads((ROOT / "rules" / ".schema.json").read_text(encoding="utf-8"))
    assert committed == printed_schema(capsys), (
        "regenerate it: aftersale rules schema > rules/.schema.json"
    )


@pytest.mark.parametrize("path", sorted((ROOT / "rules").glob("*.y*ml")), ids=lambda p: p.name)
def test_every_shipped_rule_file_names_the_schema(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=.schema.json"
    # Relative to the rule file, as the YAML language server resolves it.
    assert (path.parent / ".schema.json").is_file()
