"""`aftersale simulate --jobs N`: the replay split by customer across processes prints exactly
what one process prints (every JSON line, the table and its totals, the bad lines)."""

from __future__ import annotations

import json
import os
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.config import ROOT
from app.intake.jsonl import parse_lines
from app.rules.loader import RuleSet, load_rules
from app.simulate import shards
from app.simulate.command import paused_gc
from app.simulate.engagement import take_engagement
from app.simulate.replay import SimulationResult, simulate
from app.simulate.shards import simulate_split, split
from tests.catalog import shop_history as shop
from tests.simulate.factories import iso, rules_in
from tests.simulate.test_command import RECOMMEND_RULES, shop_orders

START = datetime(2026, 1, 1, tzinfo=UTC)
SKUS = [
    ("DIAPER-M-60", "baby/diapers", 4),
    ("FOOD-APPLE-6", "baby/food", 3),
    ("CART-BK-12", "office/cartridges", 3),
    ("BED-1", "kids/furniture", 1),
    ("DESK-1", "kids/furniture", 1),
    ("TOY-CAR", "home/other", 2),
]


def shipped_rules_without_learned(folder: Path) -> Path:
    """The shipped rules but the coffee rule (learned intervals and recommendations count
    across customers: those keep one process). Caps, sequences, birthdays, anchors, lapses,
    deliveries, reviews and the welcome stay."""
    folder.mkdir()
    for path in (ROOT / "rules").glob("*.yaml"):
        if path.name != "coffee-next-variety.yaml":
            shutil.copy(path, folder / path.name)
    rules = load_rules(folder)
    assert not rules.errors
    assert shards.splittable(rules, None) is None
    return folder


def corpus(seed: int = 3, customers: int = 60, orders: int = 400) -> list[str]:
    """A year of a small shop: repeat customers (some ordering every week or two, so caps
    defer and skip), fulfilments and deliveries, cancellations, partial and full refunds,
    consent changes, deletions, a guest who makes an account, a repeated delivery, and
    opens, clicks and reviews of the mail sent."""
    rng = random.Random(seed)
    lines: list[tuple[datetime, dict[str, Any]]] = []
    serial = 0

    def add(at: datetime, body: dict[str, Any]) -> None:
        nonlocal serial
        serial += 1
        lines.append((at, {"id": f"evt-{serial}", "occurred_at": iso(at), **body}))

    people: dict[int, dict[str, Any]] = {}
    for number in range(customers):
        person: dict[str, Any] = {
            "id": f"c-{number}",
            "email": f"c{number}@example.org",
            "time_zone": rng.choice(["Europe/Berlin", "America/New_York", "UTC"]),
            "marketing_consent": rng.random() < 0.85,
        }
        if rng.random() < 0.5:
            person["birthday"] = f"19{rng.randrange(60, 99)}-{rng.randrange(1, 13):02d}-14"
        if rng.random() < 0.3:
            person["attributes"] = {"children": [{"birth_date": "2020-03-05"}]}
        people[number] = person
    # A guest first, then an account with the same address: one customer.
    people[0] = {**people[0], "id": "guest:0"}
    for number in range(orders):
        who = int(customers * rng.random() ** 2)
        buyer = people[who]
        if who == 0 and number > orders // 2:
            buyer = people[0] = {**buyer, "id": "c-0"}
        placed = START + timedelta(days=365 * rng.random(), minutes=rng.randrange(60))
        order_id = f"o-{number}"
        items = []
        for sku, category, most in rng.sample(SKUS, 1 if rng.random() < 0.7 else 2):
            items.append(
                {
                    "sku": sku,
                    "name": sku,
                    "category": category,
                    "quantity": rng.randint(1, most),
                    "unit_price": "10.00",
                }
            )
        order = {
            "id": order_id,
            "created_at": iso(placed),
            "currency": "EUR",
            "total": "20.00",
            "items": items,
        }
        add(placed, {"type": "order.created", "order": order, "customer": buyer})
        fate = rng.random()
        ref = {"order": {"id": order_id}}
        if fate < 0.05:
            add(placed + timedelta(hours=5), {"type": "order.cancelled", **ref})
            continue
        shipped = placed + timedelta(days=rng.uniform(0.5, 2))
        add(shipped, {"type": "order.fulfilled", **ref})
        delivered = shipped + timedelta(days=rng.uniform(1, 4))
        add(delivered, {"type": "order.delivered", **ref})
        if rng.random() < 0.05:  # the same delivery reported twice
            lines.append((delivered, lines[-1][1]))
        if fate < 0.12:
            refund = {"items": [{"sku": items[0]["sku"], "quantity": 1}]} if fate < 0.09 else {}
            add(delivered + timedelta(days=3), {"type": "order.refunded", **ref, **refund})
        later = placed + timedelta(days=rng.uniform(7, 12))
        if rng.random() < 0.4:
            kind = rng.choice(["message.opened", "message.clicked"])
            lines.append(
                (later, {"type": kind, "occurred_at": iso(later), "rule": "diapers-restock", **ref})
            )
        if rng.random() < 0.3:
            review_at = delivered + timedelta(days=rng.uniform(6, 10))
            review = {
                "type": "review.answered",
                "occurred_at": iso(review_at),
                "rule": "product-review",
                "stars": rng.randint(1, 5),
                **ref,
            }
            lines.append((review_at, review))
        if rng.random() < 0.04:
            changed = {**buyer, "marketing_consent": not buyer.get("marketing_consent")}
            people[who] = changed
            add(
                placed + timedelta(days=rng.uniform(1, 30)),
                {"type": "customer.updated", "customer": changed},
            )
        if rng.random() < 0.01:
            gone = {"id": buyer["id"], "email": buyer["email"]}
            add(placed + timedelta(days=40), {"type": "customer.deleted", "customer": gone})
    # Not in time order: the replay sorts them, ties in file order.
    rng.shuffle(lines)
    return [json.dumps(body) for _, body in lines]


def single(lines: list[bytes], rules: RuleSet) -> SimulationResult:
    """The replay in this process, as `simulate --jobs 1` runs it."""
    engagement, bad = take_engagement(lines)
    events, bad_bodies = parse_lines(lines)
    assert bad == bad_bodies == []
    return simulate(events, rules=rules, engagement=engagement)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["simulate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = tmp_path_factory.mktemp("parallel")
    shipped_rules_without_learned(found / "rules")
    (found / "orders.jsonl").write_text("\n".join(corpus()) + "\n")
    return found


@pytest.mark.parametrize("output", ["json", "table"])
def test_two_and_three_processes_print_exactly_what_one_prints(
    folder: Path, output: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(folder / "orders.jsonl"), "--rules", str(folder / "rules"), "--format", output]
    printed = {}
    for jobs in ("1", "2", "3"):
        code, out, err = run(capsys, *args, "--jobs", jobs)
        assert (code, err) == (0, "")
        printed[jobs] = out
    assert printed["2"] == printed["1"]
    assert printed["3"] == printed["1"]
    if output == "json":
        outcomes = [json.loads(line) for line in printed["1"].splitlines()]
        statuses = {(o["rule"], o["status"], o["reason"]) for o in outcomes}
        rules = {o["rule"] for o in outcomes}
        # The corpus reaches what ties one customer's messages together: sequences,
        # refunds, deletions, consent, reviews, birthdays, anchors and lapses.
        assert any(o["step"] == 2 for o in outcomes)
        assert {"order_refunded", "customer_deleted", "no_consent", "if_not_opened"} <= {
            reason for _, _, reason in statuses
        }
        assert {"product-review", "review-follow-up", "birthday", "win-back"} <= rules
        assert {"school-desk", "thank-you", "delivery-follow-up"} <= rules
    else:
        assert "beyond --until" in printed["1"]


def test_the_split_result_equals_the_single_replay_field_by_field(folder: Path) -> None:
    rules = load_rules(folder / "rules")
    raw = (folder / "orders.jsonl").read_bytes().split(b"\n")
    with paused_gc():
        one = single(list(raw), rules)
        two = simulate_split(
            list(raw), jobs=2, rules=rules, start=None, until=None, default_time_zone="UTC"
        ).result
    assert two is not None
    assert two == one
    assert one.duplicate_events > 0 and one.unmatched_engagement > 0
    # The frequency cap (limits.yaml) moved messages in this corpus.
    (folder / "rules" / "limits.yaml").rename(folder / "limits.yaml")
    try:
        uncapped = single(list(raw), load_rules(folder / "rules"))
    finally:
        (folder / "limits.yaml").rename(folder / "rules" / "limits.yaml")
    assert uncapped.outcomes != one.outcomes
    # Customers went to both processes.
    assert len(set(split(raw, 2))) == 2


def test_a_split_from_and_until_list_the_same_messages(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        str(folder / "orders.jsonl"),
        "--rules",
        str(folder / "rules"),
        "--format",
        "json",
        "--from",
        "2026-04-01",
        "--until",
        "2026-09-30",
    ]
    assert run(capsys, *args, "--jobs", "1") == run(capsys, *args, "--jobs", "2")


def test_bad_lines_are_reported_alike_from_every_process(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = corpus(seed=5, customers=20, orders=60)
    lines[3] = lines[3].replace('"occurred_at"', '"occurred"')
    lines[17] = '{"type": "message.opened", "occurred_at": "2026-02-01T00:00:00Z"}'
    lines[30] = "not json"
    orders = tmp_path / "orders.jsonl"
    orders.write_text("\n".join(lines) + "\n")
    args = [str(orders), "--rules", str(folder / "rules")]
    one = run(capsys, *args, "--jobs", "1")
    assert one[0] == 1 and one[1] == ""
    assert "3 bad line(s)" in one[2]
    assert run(capsys, *args, "--jobs", "2") == one
    assert run(capsys, *args, "--jobs", "3") == one


def test_one_person_written_two_ways_falls_back_to_one_process(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two ids with one address as validation writes it (é composed, and e with an accent
    after it): the quick split keeps them apart, the processes' validated addresses meet,
    and the replay runs in one process: the same output."""
    placed = next(line for line in corpus(seed=7, customers=5, orders=5) if "order.created" in line)
    written: list[str] = []
    for number, (person, email) in enumerate(
        [("x-1", "ren\u00e9@example.org"), ("x-2", "rene\u0301@example.org")]
    ):
        body = json.loads(placed)
        body["id"] = f"evt-x{number}"
        body["customer"] = {"id": person, "email": email, "marketing_consent": True}
        body["order"]["id"] = f"x-order-{number}"
        written.append(json.dumps(body, ensure_ascii=False))
    orders = tmp_path / "orders.jsonl"
    orders.write_text("\n".join(written) + "\n")
    raw = orders.read_bytes().split(b"\n")
    rules = load_rules(folder / "rules")
    assert split(raw, 2)[:2] == [0, 1]  # the quick look kept them apart
    with paused_gc():
        found = simulate_split(
            list(raw), jobs=2, rules=rules, start=None, until=None, default_time_zone="UTC"
        )
    assert found.bad == [] and found.result is None
    args = [str(orders), "--rules", str(folder / "rules"), "--format", "json"]
    assert run(capsys, *args, "--jobs", "2") == run(capsys, *args, "--jobs", "1")


def test_rules_that_count_across_customers_keep_one_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = tmp_path / "orders.jsonl"
    orders.write_text("\n".join(corpus(seed=9, customers=10, orders=30)) + "\n")
    args = [str(orders), "--rules", str(ROOT / "rules"), "--format", "json"]
    code, out, err = run(capsys, *args, "--jobs", "2")
    assert code == 0
    assert "one process: learned intervals are counted across customers" in err
    assert (code, out) == run(capsys, *args, "--jobs", "1")[:2]


def test_jobs_must_be_a_positive_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "orders.jsonl", "--jobs", "0"])
    assert "not a number of processes" in capsys.readouterr().err


def test_the_single_replay_lists_by_send_time_then_customer(folder: Path) -> None:
    result = single(
        (folder / "orders.jsonl").read_bytes().split(b"\n"), load_rules(folder / "rules")
    )
    keys = [(o.send_at, o.customer_id) for o in result.outcomes]
    assert keys == sorted(keys)


def test_an_empty_file_split_prints_what_one_process_prints(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = tmp_path / "orders.jsonl"
    orders.write_text("\n")
    args = [str(orders), "--rules", str(folder / "rules")]
    one = run(capsys, *args, "--jobs", "1")
    assert one[0] == 0 and "0 message(s)" in one[1]
    assert run(capsys, *args, "--jobs", "4") == one


def test_by_default_every_core_splits_a_large_file_only() -> None:
    assert shards.default_jobs(shards.SPLIT_FROM_LINES - 1) == 1
    cores = len(os.sched_getaffinity(0))
    assert shards.default_jobs(10**6) == cores
    # Each process gets half of SPLIT_FROM_LINES lines or more.
    assert shards.default_jobs(shards.SPLIT_FROM_LINES) == min(cores, 2)


def test_a_catalog_splits_alike_and_recommendations_keep_one_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = shop_orders(tmp_path)
    catalog = tmp_path / "products.jsonl"
    catalog.write_text(shop.product_lines(), encoding="utf-8")
    # Items resolved to the catalog's products (their categories): read alike by each process.
    resolved = RECOMMEND_RULES.replace(
        "    recommend: {count: 3, from: co_purchase, exclude: owned}\n", ""
    )
    for folder, rules in (("resolved", resolved), ("recommend", RECOMMEND_RULES)):
        rules_in(tmp_path / folder, rules)
        args = [str(orders), "--rules", str(tmp_path / folder), "--catalog", str(catalog)]
        one = run(capsys, *args, "--format", "json", "--jobs", "1")
        two = run(capsys, *args, "--format", "json", "--jobs", "2")
        assert one[0] == 0 and one[1].count("\n") > 10
        assert two[:2] == one[:2]
        if folder == "recommend":
            assert (
                two[2] == "aftersale simulate: one process: recommendations are counted "
                "across customers\n"
            )
        else:
            assert two[2] == one[2] == ""
