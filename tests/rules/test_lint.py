"""`aftersale rules check`: every error as file:line:col, exit 1; the shipped rules pass."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.cli import main
from app.config import ROOT


def run_check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["rules", "check", *args])
    return code, capsys.readouterr().out.splitlines()


def test_shipped_rules_and_templates_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_check(capsys, str(ROOT / "rules"))
    assert (code, lines) == (0, [f"{ROOT / 'rules'}: ok"])


def test_every_error_with_its_position(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    rules.mkdir()
    (templates / "good" / "en").mkdir(parents=True)
    (templates / "good" / "en" / "subject.txt").write_text("Hi {{ customer.first_name }}")
    (templates / "good" / "en" / "body.html").write_text("<p>{{ items[0].name }}</p>")
    (templates / "broken" / "en").mkdir(parents=True)
    (templates / "broken" / "en" / "subject.txt").write_text("Hi {{ customer.nickname }}")
    (templates / "broken" / "en" / "body.html").write_text("<p>hello</p>")
    (rules / "shop.yaml").write_text(
        "rules:\n"
        "  - id: fine\n"
        "    when: {event: order.created}\n"
        "    template: good\n"
        "  - id: typo\n"
        "    when: {event: order.created}\n"
        "    sendd: {after: 1d}\n"
        "    template: good\n"
        "  - id: bad-delay\n"
        "    when: {event: order.created}\n"
        "    send: {after: 2m..1m}\n"
        "    template: good\n"
        "  - id: no-template\n"
        "    when: {event: order.created}\n"
        "    template: missing\n"
        "  - id: undefined-variable\n"
        "    when: {event: order.created}\n"
        "    template: broken\n"
    )
    code, lines = run_check(capsys, str(rules), "--templates", str(templates))
    assert code == 1
    relative = [line.replace(f"{rules}/", "") for line in lines]
    assert relative[0] == "shop.yaml:7:5: unknown key 'sendd' (a typo?)"
    assert relative[1].startswith("shop.yaml:11:19: rules.2.send.after:")
    assert "first duration must not exceed the second" in relative[1]
    assert relative[2].startswith("shop.yaml:15:15: template 'missing' has no en/subject.txt")
    assert relative[3].startswith("shop.yaml:18:15: template 'broken' (en) does not render")
    assert "nickname" in relative[3] and "subject.txt" in relative[3]
    assert len(relative) == 4


def test_yaml_syntax_error_position(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("rules:\n  - id: x\n    when: {event: order.created\n")
    code, lines = run_check(capsys, str(tmp_path))
    assert code == 1
    assert lines[0].startswith(f"{tmp_path}/bad.yaml:4:1: invalid YAML")


def test_each_variant_template_is_checked_where_it_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    rules.mkdir()
    (templates / "good" / "en").mkdir(parents=True)
    (templates / "good" / "en" / "subject.txt").write_text("Hi")
    (templates / "good" / "en" / "body.html").write_text("<p>hello</p>")
    (rules / "split.yaml").write_text(
        "rules:\n"
        "  - id: split\n"
        "    when: {event: order.created}\n"
        "    variants:\n"
        "      - {template: good, weight: 1}\n"
        "      - {template: gone, weight: 1}\n"
    )
    code, lines = run_check(capsys, str(rules), "--templates", str(templates))
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith(
        f"{rules / 'split.yaml'}:6:20: template 'gone' has no en/subject.txt"
    )


def test_rules_check_refuses_a_template_too_slow_to_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFTERSALE_RENDER_TIMEOUT", "0.3")
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    rules.mkdir()
    for name, body in (
        ("slow", "{% for i in range(1000) %}{{ (range(5000)|list|join)|length }}{% endfor %}"),
        ("huge", '{{ "%0500000000d"|format(1) }}'),
        ("fine", "<p>{% for item in items %}{{ item.name }} {% endfor %}</p>"),
    ):
        for locale in ("en", "de"):
            folder = templates / name / locale
            folder.mkdir(parents=True)
            (folder / "subject.txt").write_text("Hi {{ customer.first_name }}")
            (folder / "body.html").write_text(body if locale == "de" else "<p>Hello</p>")
        (rules / f"{name}.yaml").write_text(
            f"rules:\n  - id: {name}\n    when: {{event: order.created}}\n    template: {name}\n"
        )
    started = time.perf_counter()
    code, lines = run_check(capsys, str(rules), "--templates", str(templates))
    assert time.perf_counter() - started < 5
    assert code == 1
    relative = [line.replace(f"{rules}/", "") for line in lines]
    assert len(relative) == 2, relative
    assert relative[0].startswith("huge.yaml:4:15: template 'huge' (de) does not render")
    assert (
        "sandbox refused" in relative[0] and "format width or precision over 1,000" in relative[0]
    )
    assert relative[1].startswith("slow.yaml:4:15: template 'slow' (de) is too slow to render")
    assert "rendering took longer than 0.3 s" in relative[1]


def test_recommend_errors_name_the_key_and_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "shop.yaml").write_text(
        "rules:\n"
        "  - id: fine\n"
        "    when: {event: order.created}\n"
        "    template: coffee-next-variety\n"
        "    recommend: {count: 3, from: co_purchase, exclude: owned}\n"
        "  - id: wrong-source\n"
        "    when: {event: order.created}\n"
        "    template: coffee-next-variety\n"
        "    recommend: {from: bestsellers}\n"
        "  - id: too-many\n"
        "    when: {event: order.created}\n"
        "    template: coffee-next-variety\n"
        "    recommend: {count: 40}\n"
        "  - id: typo\n"
        "    when: {event: order.created}\n"
        "    template: coffee-next-variety\n"
        "    recommend: {count: 3, exlude: owned}\n"
    )
    code, lines = run_check(capsys, str(rules))
    assert code == 1
    relative = [line.replace(f"{rules}/", "") for line in lines]
    assert len(relative) == 3, relative
    assert relative[0].startswith("shop.yaml:9:")
    assert "rules.1.recommend.from" in relative[0]
    assert "'co_purchase', 'same_category' or 'new_arrivals'" in relative[0]
    assert relative[1].startswith("shop.yaml:13:") and "rules.2.recommend.count" in relative[1]
    assert "less than or equal to 12" in relative[1]
    assert relative[2].startswith("shop.yaml:17:") and "unknown key 'exlude'" in relative[2]
