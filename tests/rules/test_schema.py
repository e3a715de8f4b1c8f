"""`aftersale rules schema`: a draft 2020-12 JSON Schema that the shipped rules satisfy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from app.cli import main
from app.config import ROOT


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
