"""Stricter rule files: a repeated key and an empty or reversed range are errors at
file:line:col in `aftersale rules check`, and the running service refuses them too."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.rules.loader import load_rules

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "email"


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> list[str]:
    """`rules check` output for one file `shop.yaml`, with paths relative to its folder."""
    (tmp_path / "shop.yaml").write_text(text, encoding="utf-8")
    code = main(["rules", "check", str(tmp_path), "--templates", str(TEMPLATES)])
    lines = [line.replace(f"{tmp_path}/", "") for line in capsys.readouterr().out.splitlines()]
    assert code == (1 if lines != [f"{tmp_path}: ok"] else 0)
    return lines


def test_two_send_keys_in_one_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = check(
        tmp_path,
        capsys,
        "rules:\n"
        "  - id: restock\n"
        "    when: {event: order.created}\n"
        "    send: {after: 1w}\n"
        "    template: thank-you\n"
        "    send: {after: 2w}\n",
    )
    assert lines == ["shop.yaml:6:5: duplicate key 'send' (first at line 4); only one may be given"]


def test_duplicates_at_every_depth_and_in_flow_style(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = check(
        tmp_path,
        capsys,
        "defaults: {kind: marketing}\n"
        "rules:\n"
        "  - id: diapers\n"
        "    when:\n"
        "      event: order.created\n"
        "      items: {sku: [DIAPER-*], sku: [FOOD-*]}\n"
        "    template: thank-you\n"
        "    send:\n"
        "      after: 1w..2w\n"
        "      time: '10:00'\n"
        "      after: 3w\n"
        "defaults: {kind: transactional}\n",
    )
    assert lines == [
        "shop.yaml:6:32: duplicate key 'sku' (first at line 6); only one may be given",
        "shop.yaml:11:7: duplicate key 'after' (first at line 9); only one may be given",
        "shop.yaml:12:1: duplicate key 'defaults' (first at line 1); only one may be given",
    ]


def test_keys_that_safe_load_builds_alike_are_duplicates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # YAML 1.1: `yes` and `true` are both True; `1` and `1.0` are one dict key.
    lines = check(
        tmp_path,
        capsys,
        "rules:\n"
        "  - id: x\n"
        "    when: {event: order.created}\n"
        "    template: thank-you\n"
        "    links: {yes: /a, true: /b}\n",
    )
    assert (
        lines[0] == "shop.yaml:5:22: duplicate key 'true' (first at line 5); only one may be given"
    )


def test_keys_overriding_a_merge_are_not_duplicates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = check(
        tmp_path,
        capsys,
        "rules:\n"
        "  - &base\n"
        "    id: first\n"
        "    when: {event: order.created}\n"
        "    template: thank-you\n"
        "  - <<: *base\n"
        "    id: second\n",
    )
    assert lines == [f"{tmp_path}: ok"]


def test_a_repeated_key_in_an_anchor_is_reported_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = check(
        tmp_path,
        capsys,
        "rules:\n"
        "  - id: first\n"
        "    when: &when {event: order.created, event: order.fulfilled}\n"
        "    template: thank-you\n"
        "  - id: second\n"
        "    when: *when\n"
        "    template: thank-you\n",
    )
    assert lines == [
        "shop.yaml:3:40: duplicate key 'event' (first at line 3); only one may be given"
    ]


def test_the_service_refuses_a_file_with_a_duplicate_key(tmp_path: Path) -> None:
    (tmp_path / "shop.yaml").write_text(
        "rules:\n  - id: x\n    when: {event: order.created}\n"
        "    template: thank-you\n    template: thank-you\n"
    )
    rules = load_rules(tmp_path)
    assert rules.errors == (
        f"{tmp_path}/shop.yaml:5:5: duplicate key 'template' (first at line 4); "
        "only one may be given",
    )


RULE = "rules:\n  - id: x\n    template: thank-you\n"


@pytest.mark.parametrize(
    ("rule", "at", "message"),
    [
        (
            "    when: {event: order.created, items: {price: {min: 100, max: 10}}}\n",
            "{min: 100",
            "rules.0.when.items.price: Value error, empty range: min 100 is above max 10",
        ),
        (
            "    when: {event: order.created, order: {total: {min: 50, max: 49.99}}}\n",
            "{min: 50",
            "rules.0.when.order.total: Value error, empty range: min 50 is above max 49.99",
        ),
        (
            "    when: {event: order.created, items: {quantity: {min: 3, max: 2}}}\n",
            "{min: 3",
            "rules.0.when.items.quantity: Value error, empty range: min 3 is above max 2",
        ),
        (
            "    when: {event: order.created, items: {quantity: {min: 2.5, max: 2.9}}}\n",
            "{min: 2.5",
            "rules.0.when.items.quantity: Value error, empty range: no whole quantity lies "
            "between 2.5 and 2.9",
        ),
        (
            "    when: {event: order.created, items: {price: {}}}\n",
            "{}",
            "rules.0.when.items.price: Value error, give min, max or both, e.g. "
            "{min: 10, max: 100}",
        ),
        (
            "    when: {event: order.created}\n    send: {after: 2w..1w}\n",
            "2w..1w",
            "rules.0.send.after: Value error, bad range '2w..1w': the first duration must "
            "not exceed the second",
        ),
        (
            "    when: {event: order.created}\n    send: {learned: {fallback: 5w..4w}}\n",
            "5w..4w",
            "rules.0.send.learned.fallback: Value error, bad range '5w..4w': the first "
            "duration must not exceed the second",
        ),
        (
            "    when: {event: order.created}\n"
            "    send: {anchor: customer.birthday, at: +7y, fallback: {after: 30d..1mo}}\n",
            "30d..1mo",
            "rules.0.send.fallback.after: Value error, bad range '30d..1mo': the first "
            "duration exceeds the second when counted from 31 January; write both in "
            "months or both in days",
        ),
    ],
)
def test_empty_and_reversed_ranges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rule: str, at: str, message: str
) -> None:
    # The error points at the range as written: its line (4 or 5) and its first character.
    text = RULE + rule
    line_index = next(n for n, line in enumerate(text.splitlines()) if at in line)
    where = f"{line_index + 1}:{text.splitlines()[line_index].index(at) + 1}"
    assert check(tmp_path, capsys, text) == [f"shop.yaml:{where}: {message}"]


@pytest.mark.parametrize(
    "filters",
    [
        "items: {price: {min: 10, max: 10}}",
        "items: {quantity: {min: 2, max: 2}}",
        "items: {quantity: {min: 1.5, max: 2}}",
        "items: {price: {max: 10}}",
        "order: {total: {min: 0}}",
    ],
)
def test_ranges_with_room_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], filters: str
) -> None:
    text = RULE + f"    when: {{event: order.created, {filters}}}\n"
    assert check(tmp_path, capsys, text) == [f"{tmp_path}: ok"]
