"""`aftersale simulate` end to end: input errors, output formats, options, the shipped rules."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.cli import main
from app.config import ROOT
from app.events import BODY_MODELS, EXAMPLE_BODY, Envelope
from app.intake.jsonl import parse_line
from app.progress import ProgressBar
from app.rules.loader import load_rules
from app.simulate.options import parse_instant
from tests.catalog import shop_history as shop
from tests.simulate.factories import PLACED, created, customer, item, rules_in

SAMPLE = Path(__file__).with_name("orders.jsonl")
RULES = """
rules:
  - id: thanks
    kind: transactional
    when: {event: order.created}
    template: thank-you
  - id: reminder
    when: {event: order.created}
    send: {after: 400d}
    variants: [{template: a}, {template: b}]
"""


def write_orders(folder: Path, *bodies: dict[str, Any] | str) -> Path:
    path = folder / "orders.jsonl"
    path.write_text(
        "".join((body if isinstance(body, str) else json.dumps(body)) + "\n" for body in bodies)
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["simulate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_lines_one_object_per_message_in_send_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_in(tmp_path / "rules", RULES)
    orders = write_orders(
        tmp_path,
        created("2", at=PLACED + timedelta(days=1), buyer=customer(2)),
        created("1", items=[item("SKU-9", "misc")]),
    )
    code, out, err = run(
        capsys, str(orders), "--rules", str(tmp_path / "rules"), "--format", "json"
    )
    assert (code, err) == (0, "")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(row["rule"], row["order_id"], row["send_at"]) for row in rows] == [
        ("thanks", "1", "2026-11-20T09:00:00Z"),
        ("thanks", "2", "2026-11-21T09:00:00Z"),
    ]
    assert rows[0] == {
        "send_at": "2026-11-20T09:00:00Z",
        "rule": "thanks",
        "template": "thank-you",
        "variant": None,
        "kind": "transactional",
        "email": "c1@example.org",
        "customer_id": "c-1",
        "order_id": "1",
        "status": "planned",
        "reason": None,
        "recommendations": None,
        "step": 1,
        "condition": None,
    }


def test_table_lists_messages_then_totals_per_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_in(tmp_path / "rules", RULES)
    orders = write_orders(tmp_path, created("1"))
    code, out, _ = run(capsys, str(orders), "--rules", str(tmp_path / "rules"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "send_at",
        "(UTC)",
        "rule",
        "step",
        "variant",
        "template",
        "email",
        "order",
        "status",
        "reason",
        "if",
    ]
    assert lines[1].split() == [
        "2026-11-20",
        "09:00",
        "thanks",
        "1",
        "-",
        "thank-you",
        "c1@example.org",
        "1",
        "planned",
        "-",
        "-",
    ]
    assert lines[3].split() == [
        "rule",
        "step",
        "planned",
        "skipped",
        "cancelled",
        "expired",
        "held_out",
        "total",
    ]
    assert lines[4].split() == ["thanks", "1", "1", "0", "0", "0", "0", "1"]
    # The 400-day reminder falls after the default --until (a year after the last event).
    assert lines[-1] == (
        "1 message(s) from 2026-11-20T09:00:00Z until 2027-11-20T09:00:00Z; "
        "1 beyond --until, not shown"
    )


def test_from_and_until_accept_dates_and_a_bare_until_date_includes_its_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_in(tmp_path / "rules", RULES)
    orders = write_orders(
        tmp_path,
        created("1"),
        created("2", at=datetime(2026, 11, 21, 23, 30, tzinfo=UTC)),
        created("3", at=datetime(2026, 11, 22, 0, 30, tzinfo=UTC)),
    )
    code, out, _ = run(
        capsys,
        str(orders),
        "--rules",
        str(tmp_path / "rules"),
        "--from",
        "2026-11-21",
        "--until",
        "2026-11-21",
        "--format",
        "json",
    )
    assert code == 0
    assert [json.loads(line)["order_id"] for line in out.splitlines()] == ["2"]


def test_dates_are_iso_and_naive_means_utc() -> None:
    assert parse_instant("2027-01-31") == datetime(2027, 1, 31, tzinfo=UTC)
    assert parse_instant("2027-01-31", end_of_day=True) == datetime(
        2027, 1, 31, 23, 59, 59, 999_999, tzinfo=UTC
    )
    assert parse_instant("2027-01-31T12:00") == datetime(2027, 1, 31, 12, tzinfo=UTC)
    assert parse_instant("2027-01-31T12:00+03:00") == datetime(
        2027, 1, 31, 12, tzinfo=timezone(timedelta(hours=3))
    )


def test_a_bad_date_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "orders.jsonl", "--until", "next week"])
    assert exited.value.code == 2
    assert "'next week' is not a date" in capsys.readouterr().err


def test_every_bad_line_is_reported_with_its_number_and_nothing_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_in(tmp_path / "rules", RULES)
    bad_email = created("2", buyer=customer(email="not-an-address"))
    unknown = {**created("3"), "type": "order.shipped"}
    orders = write_orders(tmp_path, created("1"), "{not json", "", bad_email, unknown)
    code, out, err = run(capsys, str(orders), "--rules", str(tmp_path / "rules"))
    assert (code, out) == (1, "")
    problems = err.splitlines()
    assert problems[0].startswith(f"{orders}:2: Invalid JSON")
    assert problems[1].startswith(f"{orders}:4: customer.email: value is not a valid email")
    assert problems[2].startswith(f"{orders}:5: type: Input should be 'order.created'")
    assert problems[-1] == f"3 bad line(s) in {orders}"


def test_rule_errors_and_a_missing_file_stop_before_anything_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules.yaml").write_text("rules:\n  - id: x\n    when: {event: order.created}\n")
    code, out, err = run(capsys, str(tmp_path / "orders.jsonl"), "--rules", str(tmp_path))
    assert (code, out) == (1, "")
    assert "give either 'template' or 'variants'" in err
    rules_in(tmp_path / "ok", RULES)
    code, out, err = run(capsys, str(tmp_path / "missing.jsonl"), "--rules", str(tmp_path / "ok"))
    assert (code, out) == (1, "")
    assert "missing.jsonl" in err


def test_the_shipped_rules_over_a_sample_of_orders(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(SAMPLE), "--rules", str(ROOT / "rules"), "--format", "json")
    # The coffee cross-sell recommends products: without a catalog there are none to show.
    assert (code, err) == (
        0,
        "aftersale simulate: rules with 'recommend' show no products without --catalog\n",
    )
    rows = [json.loads(line) for line in out.splitlines()]
    known = {rule.id for rule in load_rules(ROOT / "rules").rules}
    assert {row["rule"] for row in rows} <= known
    assert [row["send_at"] for row in rows] == sorted(row["send_at"] for row in rows)
    # Every order is thanked; the cancelled order's reminder is cancelled, not sent.
    assert {row["order_id"] for row in rows if row["rule"] == "thank-you"} == {
        "5001",
        "5002",
        "5003",
        "5004",
        "5005",
    }
    cartridges = [row for row in rows if row["order_id"] == "5004" and row["rule"] != "thank-you"]
    assert [(row["status"], row["reason"]) for row in cartridges] == [
        ("cancelled", "order_cancelled")
    ]
    # Bought the same coffee again before the reminder: skipped (unless held out by draw).
    coffee = {row["order_id"]: row["status"] for row in rows if row["rule"].startswith("coffee")}
    assert coffee.get("5002") in ("skipped", "held_out")


def test_the_progress_bar_redraws_one_line_at_most_so_often() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, min_interval=3600)
    bar.update("replaying", 5, 10)
    bar.update("replaying", 6, 10)  # too soon: not drawn
    bar.close()
    assert stream.getvalue() == (
        "\rreplaying [###############...............] 5/10"
        + "\r"
        + " " * len("replaying [###############...............] 5/10")
        + "\r"
    )


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_in(tmp_path / "rules", RULES)
    orders = write_orders(tmp_path, *(created(f"{n}") for n in range(2000)))
    code, _, err = run(capsys, str(orders), "--rules", str(tmp_path / "rules"))
    assert (code, err) == (0, "")


BODIES: list[dict[str, Any]] = [
    EXAMPLE_BODY,
    {**EXAMPLE_BODY, "customer": {**EXAMPLE_BODY["customer"], "email": " Anna@Example.ORG "}},
    {**EXAMPLE_BODY, "customer": {**EXAMPLE_BODY["customer"], "email": "anna@@example.org"}},
    {**EXAMPLE_BODY, "order": {**EXAMPLE_BODY["order"], "email": "shop@example.org"}},
    {**EXAMPLE_BODY, "order": {**EXAMPLE_BODY["order"], "email": "nope"}},
    {**EXAMPLE_BODY, "id": 5},
    {
        "id": "e",
        "type": "order.fulfilled",
        "occurred_at": "2026-11-20T10:00:00Z",
        "order": {"id": 1},
        "customer": EXAMPLE_BODY["customer"],
    },
    {"id": "e", "type": "order.fulfilled", "occurred_at": "2026-11-20T10:00:00Z", "order": {}},
    {"id": "e", "type": "customer.updated", "occurred_at": "2026-11-20T10:00:00Z", "customer": {}},
    {"id": "e", "type": "customer.deleted", "occurred_at": "2026-11-20", "customer": {"id": 1}},
    {"id": "e", "type": "order.cancelled", "occurred_at": "2026-11-20T10:00:00Z"},
]


def _webhook(raw: bytes) -> tuple[dict[str, Any] | None, list[Any]]:
    """What POST /webhooks/orders makes of a body: the model, or the errors."""
    try:
        envelope = Envelope.model_validate_json(raw)
        event = BODY_MODELS[envelope.type].model_validate_json(raw)
    except ValidationError as exc:
        return None, exc.errors(include_url=False)
    return event.model_dump(), []


@pytest.mark.parametrize("body", BODIES)
def test_bodies_are_validated_exactly_as_the_webhook_validates_them(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    expected = _webhook(raw)
    try:
        found: tuple[dict[str, Any] | None, list[Any]] = (parse_line(raw).model_dump(), [])
    except ValidationError as exc:
        found = (None, exc.errors(include_url=False))
    assert found == expected


def test_the_replay_uses_the_services_own_constants() -> None:
    from app.intake.aftersale import DEFAULT_SHOP
    from app.jobs.birthdays import HORIZON
    from app.lifecycle import memory
    from app.orders.repository import GAPS_PER_RULE, PAST_ORDERS
    from app.simulate import replay

    # What the memory store holds of the past is what the SQL store reads.
    assert memory.SHOP == DEFAULT_SHOP
    assert (memory.PAST_ORDERS, memory.GAPS_PER_RULE) == (PAST_ORDERS, GAPS_PER_RULE)
    assert replay.BIRTHDAY_HORIZON == HORIZON


RECOMMEND_RULES = """
rules:
  - id: coffee-next-variety
    when: {event: order.created, items: {category: [coffee]}}
    send: {after: 0m}
    template: coffee-next-variety
    recommend: {count: 3, from: co_purchase, exclude: owned}
"""


def shop_orders(folder: Path) -> Path:
    """tests/catalog/shop_history.py as webhook bodies: the history the dispatcher test
    stores, then Anna's Ethiopia order."""
    history = [
        created(
            f"h-{number}",
            at=parse_instant(when),
            items=[shop.item(sku)],
            buyer=customer(100 + number, id=buyer),
        )
        for number, (when, buyer, sku) in enumerate(shop.history())
    ]
    anna = customer(1, id="c-anna")
    return write_orders(
        folder,
        *history,
        created(
            "anna-1",
            at=parse_instant("2026-09-15T09:00:00Z"),
            items=[shop.item("COF-KEN-500")],
            buyer=anna,
        ),
        created("anna-2", items=[shop.item("COF-ETH-500")], buyer=anna),
    )


def test_json_lists_the_recommended_skus_as_the_dispatcher_picks_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_in(tmp_path / "rules", RECOMMEND_RULES)
    orders = shop_orders(tmp_path)
    catalog = tmp_path / "products.jsonl"
    catalog.write_text(shop.product_lines(), encoding="utf-8")
    code, out, err = run(
        capsys,
        str(orders),
        "--rules",
        str(tmp_path / "rules"),
        "--catalog",
        str(catalog),
        "--format",
        "json",
        "--from",
        "2026-11-20",
    )
    assert (code, err) == (0, "")
    [row] = [json.loads(line) for line in out.splitlines()]
    assert (row["order_id"], row["status"]) == ("anna-2", "planned")
    # The same three as the mail the dispatcher sends (tests/outbox/test_recommendations.py).
    assert row["recommendations"] == shop.EXPECTED


def test_without_a_catalog_recommendations_are_empty_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_in(tmp_path / "rules", RECOMMEND_RULES)
    orders = shop_orders(tmp_path)
    code, out, err = run(
        capsys, str(orders), "--rules", str(tmp_path / "rules"), "--format", "json"
    )
    assert code == 0
    assert "without --catalog" in err
    assert {tuple(json.loads(line)["recommendations"]) for line in out.splitlines()} == {()}


def test_a_bad_catalog_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules_in(tmp_path / "rules", RECOMMEND_RULES)
    orders = shop_orders(tmp_path)
    catalog = tmp_path / "products.jsonl"
    catalog.write_text(shop.product_lines() + '{"id": "x"}\n', encoding="utf-8")
    code, out, err = run(
        capsys, str(orders), "--rules", str(tmp_path / "rules"), "--catalog", str(catalog)
    )
    assert (code, out) == (1, "")
    assert f"{catalog}:7: title: Field required" in err


CATALOG_RULES = """
rules:
  - id: diapers
    when:
      event: order.created
      items: {category: ["Baby & Toddler > Diapering"], vendor: [lillydoo]}
    send: {after: 1w}
    template: diapers-restock
"""


def test_a_catalog_resolves_items_as_intake_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_in(tmp_path / "rules", CATALOG_RULES)
    catalog = tmp_path / "products.jsonl"
    catalog.write_text(
        json.dumps(
            {
                "id": "788032119674292922",
                "title": "Öko-Windeln Größe 4",
                "categories": ["Baby & Toddler > Diapering > Diapers"],
                "variants": [{"id": "642667041472713922", "sku": "LD-W4-44", "price": "13.90"}],
            }
        )
        + "\n"
        + json.dumps({"id": "wipes", "title": "Feuchttücher", "vendor": "Lillydoo", "sku": "W-1"})
        + "\n"
    )
    by_variant = {"sku": None, "name": "Windeln", "product_id": 1, "variant_id": 642667041472713922}
    by_sku = {"sku": "W-1", "name": "Feuchttücher"}
    orders = write_orders(
        tmp_path,
        created("1", items=[by_variant]),
        created("2", items=[by_sku], buyer=customer(2)),
        created("3", items=[item("LD-W4-44", "misc")], buyer=customer(3)),
    )
    base = [str(orders), "--rules", str(tmp_path / "rules"), "--format", "json"]
    code, out, err = run(capsys, *base)
    assert (code, out, err) == (0, "", "")  # without the catalog, nothing says "diapers"
    code, out, err = run(capsys, *base, "--catalog", str(catalog))
    assert (code, err) == (0, "")
    # By variant id (the product id 1 is unknown), and by SKU; the vendor alone, too.
    assert sorted(json.loads(line)["order_id"] for line in out.splitlines()) == ["1", "2", "3"]

    catalog.write_text('{"id": "x"}\nnot json\n')
    code, out, err = run(capsys, *base, "--catalog", str(catalog))
    assert (code, out) == (1, "")
    assert f"{catalog}:1: " in err and f"{catalog}:2: not a JSON object" in err
