""".env.example names every setting's environment variable with its default, so a copy of it
is a full, correct map of the configuration and cannot go stale (a new field fails here)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo

from app.config import ROOT, Settings

ENV_EXAMPLE = ROOT / ".env.example"


def env_name(name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        assert isinstance(first, str)
        return first
    return f"AFTERSALE_{name.upper()}"


def shown(value: Any) -> str:
    """A default as one writes it in .env; paths in the checkout relative to it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, timedelta):
        days, seconds = divmod(int(value.total_seconds()), 86400)
        return f"{days}d" if not seconds else str(int(value.total_seconds()))
    if isinstance(value, Path):
        return str(value.relative_to(ROOT)) if value.is_relative_to(ROOT) else str(value)
    if isinstance(value, list | tuple):
        return ",".join(shown(each) for each in value)
    if isinstance(value, dict):
        return ",".join(f"{key}={shown(each)}" for key, each in value.items())
    return str(value).replace(f"{ROOT}/", "")


def default_of(field: FieldInfo) -> Any:
    return field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]


def expected_lines() -> dict[str, str]:
    return {
        env_name(name, field): f"{env_name(name, field)}={shown(default_of(field))}"
        for name, field in Settings.model_fields.items()
    }


def test_env_example_names_every_setting_with_its_default() -> None:
    text = ENV_EXAMPLE.read_text()
    # Commented out: a copy changes nothing until a line is uncommented.
    written = dict(
        (line.split("=", 1)[0], line)
        for line in re.findall(r"^# (AFTERSALE_\w+=.*)$", text, flags=re.MULTILINE)
    )
    expected = expected_lines()
    missing = sorted(set(expected) - set(written))
    assert missing == [], f".env.example lacks {missing}"
    wrong = {
        name: (written[name], line) for name, line in expected.items() if written[name] != line
    }
    assert wrong == {}, "defaults in .env.example differ from app/config.py"
    unknown = sorted(set(written) - set(expected))
    assert unknown == [], f".env.example names settings that do not exist: {unknown}"
    # The bare names read too, said where their setting is.
    for bare in ("PORT", "HOST", "LOG_LEVEL"):
        assert re.search(rf"^#.*\b{bare}\b", text, flags=re.MULTILINE), bare
