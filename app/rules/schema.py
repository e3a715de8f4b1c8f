"""JSON Schema of the rule file format, for editors' YAML language servers."""

from __future__ import annotations

from typing import Any

from app.rules.model import RuleFile

SCHEMA_ID = "https://aftersale.dev/schemas/rules.json"


def rules_json_schema() -> dict[str, Any]:
    schema = RuleFile.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "aftersale rule file",
        "description": "Lifecycle email rules: when an event matches, which template to send "
        "and when. See docs/rules.md.",
        **{key: value for key, value in schema.items() if key not in ("title", "description")},
    }
