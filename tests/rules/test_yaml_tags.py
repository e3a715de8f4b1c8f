"""Rule files are data: a YAML tag that would build a Python object is an error at its
line:col, in `aftersale rules check` and in the running service, and nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.config import ROOT
from app.rules.source import RulesSource

TEMPLATES = ROOT / "templates" / "email"
GOOD = "rules:\n  - id: fine\n    when: {event: order.created}\n    template: thank-you\n"

# (file text with {marker}, line, column of the tag, the tag as reported)
TAGGED = [
    (
        "rules:\n  - id: x\n    when: {event: order.created}\n"
        '    template: !!python/object/apply:os.system ["touch {marker}"]\n',
        4,
        15,
        "tag:yaml.org,2002:python/object/apply:os.system",
    ),
    ("!!python/name:os.system\n", 1, 1, "tag:yaml.org,2002:python/name:os.system"),
    (
        "rules: !!python/object/new:subprocess.check_output [[touch, {marker}]]\n",
        1,
        8,
        "tag:yaml.org,2002:python/object/new:subprocess.check_output",
    ),
    (
        "rules:\n  - id: x\n    when: {event: order.created}\n    template: thank-you\n"
        "    send: {after: !!python/object/apply:subprocess.call [[touch, {marker}]]}\n",
        5,
        19,
        "tag:yaml.org,2002:python/object/apply:subprocess.call",
    ),
    ("rules:\n  - !!python/module:os\n", 2, 5, "tag:yaml.org,2002:python/module:os"),
    (
        "defaults: !!python/object:os._wrap_close {kind: marketing}\nrules: []\n",
        1,
        11,
        "tag:yaml.org,2002:python/object:os._wrap_close",
    ),
    ('defaults: {kind: !shell "touch {marker}"}\nrules: []\n', 1, 18, "!shell"),
]


@pytest.mark.parametrize(("text", "line", "column", "tag"), TAGGED)
def test_rules_check_refuses_python_tags(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    line: int,
    column: int,
    tag: str,
) -> None:
    marker = tmp_path / "pwned"
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yaml").write_text(GOOD)
    (rules / "tagged.yaml").write_text(text.replace("{marker}", str(marker)))
    code = main(["rules", "check", str(rules), "--templates", str(TEMPLATES)])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines() == [
        f"{rules / 'tagged.yaml'}:{line}:{column}: invalid YAML: "
        f"could not determine a constructor for the tag {tag!r}"
    ]
    assert not marker.exists()


def test_running_service_keeps_its_rules_when_a_file_gains_a_python_tag(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "rules.yaml").write_text(GOOD)
    source = RulesSource(tmp_path)
    assert source.reload()
    (tmp_path / "rules.yaml").write_text(
        f'rules: !!python/object/apply:os.system ["touch {marker}"]\n'
    )
    assert not source.reload()
    assert [rule.id for rule in source.current.rules] == ["fine"]
    assert len(source.errors) == 1 and "invalid YAML" in source.errors[0]
    assert ":1:8:" in source.errors[0]
    assert not marker.exists()
