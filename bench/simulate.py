"""How fast `aftersale simulate` replays orders, against reading and validating them alone.

Writes N synthetic orders (a year of a shop: diapers and baby food, printer cartridges,
coffee, kids' furniture and other goods; repeat customers; fulfilments, some cancellations
and refunds, customer updates and deletions; birthdays and children's birth dates) as
webhook bodies to a temporary ORDERS.jsonl, then times, with the shipped rules/ folder:

  (a) baseline: reading and validating the lines alone;
  (b) simulate: the same, plus the replay and the JSON Lines output.

Then a one-rule backtest (the shipped thank-you rule: a message for every order) over
`--one-rule-orders` orders, as `aftersale simulate --format json --jobs N` runs it (the file
split by customer across N processes, N = every core by default), against reading and
validating the same file in one process. Wall time, best of `--repeat`: the split run uses
more than one core, so CPU time of this process would not count the others.

    python bench/simulate.py [--orders 50000] [--one-rule-orders 70000] [--jobs N]
                             [--seed 7] [--repeat 1]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from app.config import ROOT
from app.intake.jsonl import _email, parse_lines
from app.rules.loader import load_rules
from app.simulate.command import paused_gc, simulate_command
from app.simulate.replay import simulate
from app.simulate.report import json_lines
from app.simulate.shards import SPLIT_FROM_LINES, default_jobs, split

START = datetime(2026, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)

# (weight, sku choices, category, name, unit price, most units per line)
PRODUCTS: list[tuple[float, list[str], str, str, str, int]] = [
    (0.22, ["DIAPER-S-60", "DIAPER-M-60", "DIAPER-L-48"], "baby/diapers", "Diapers", "24.90", 4),
    (0.08, ["FOOD-APPLE-6", "FOOD-CARROT-6"], "baby/food", "Baby food", "7.50", 3),
    (0.15, ["CART-BK-12", "CART-C-12", "CART-M-12"], "office/cartridges", "Cartridge", "39.00", 3),
    (
        0.25,
        ["COFFEE-ETH-1K", "COFFEE-COL-1K", "COFFEE-BRA-1K"],
        "coffee/beans",
        "Coffee",
        "19.00",
        2,
    ),
    (0.10, ["BED-1", "DESK-1", "CHAIR-2"], "kids/furniture", "Kids furniture", "249.00", 1),
    (0.20, ["TOY-CAR", "BOOK-ABC", "LAMP-3"], "home/other", "Other", "12.00", 2),
]
ZONES = ["Europe/Berlin", "Europe/Moscow", "America/New_York", "UTC", None]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Shop:
    """Synthetic customers and their orders, as webhook bodies."""

    def __init__(self, orders: int, rng: random.Random) -> None:
        self.rng = rng
        self.customer_count = max(1, orders // 3)  # about three orders per customer
        self.customers: dict[int, dict[str, Any]] = {}
        self.events: list[tuple[datetime, dict[str, Any]]] = []
        self.serial = 0

    def customer(self, number: int) -> dict[str, Any]:
        known = self.customers.get(number)
        if known is not None:
            return known
        rng = self.rng
        profile: dict[str, Any] = {
            "id": f"c-{number}",
            "email": f"customer{number}@example.org",
            "first_name": "Anna",
            "locale": rng.choice(["en", "ru", "de-DE"]),
            "time_zone": rng.choice(ZONES),
            "marketing_consent": rng.random() < 0.8,
            "attributes": {},
        }
        if rng.random() < 0.4:
            profile["birthday"] = str(date(1960, 1, 1) + timedelta(days=rng.randrange(16_000)))
        if rng.random() < 0.3:
            births = [date(2017, 1, 1) + timedelta(days=rng.randrange(3000)) for _ in range(2)]
            profile["attributes"] = {"children": [{"birth_date": str(day)} for day in births]}
        self.customers[number] = profile
        return profile

    def add(self, at: datetime, body: dict[str, Any]) -> None:
        self.serial += 1
        body = {"id": f"evt-{self.serial}", "occurred_at": iso(at), **body}
        self.events.append((at, body))

    def order(self) -> None:
        rng = self.rng
        # Skewed towards low numbers: a few customers order every week or two, most now
        # and then.
        number = int(self.customer_count * rng.random() ** 1.5)
        customer = self.customer(number)
        placed = START + YEAR * rng.random()
        order_id = str(100_000_000 + self.serial)
        items = [self.item() for _ in range(1 if rng.random() < 0.7 else 2)]
        total = sum(float(item["unit_price"]) * item["quantity"] for item in items)
        self.add(
            placed + timedelta(seconds=rng.randrange(120)),
            {
                "type": "order.created",
                "order": {
                    "id": order_id,
                    "created_at": iso(placed),
                    "currency": "EUR",
                    "total": f"{total:.2f}",
                    "items": items,
                },
                "customer": customer,
            },
        )
        fate = rng.random()
        if fate < 0.03:
            self.add(placed + timedelta(hours=rng.uniform(1, 48)), closed("cancelled", order_id))
        elif fate < 0.8:
            self.add(placed + timedelta(days=rng.uniform(1, 3)), closed("fulfilled", order_id))
            if fate < 0.04:
                self.add(placed + timedelta(days=rng.uniform(5, 20)), closed("refunded", order_id))
        if rng.random() < 0.03:  # a consent change, some weeks later
            changed = {**customer, "marketing_consent": not customer["marketing_consent"]}
            self.customers[number] = changed
            at = placed + timedelta(days=rng.uniform(1, 60))
            self.add(at, {"type": "customer.updated", "customer": changed})
        if rng.random() < 0.002:
            at = placed + timedelta(days=rng.uniform(1, 90))
            self.add(at, {"type": "customer.deleted", "customer": {"id": customer["id"]}})

    def item(self) -> dict[str, Any]:
        weights = [product[0] for product in PRODUCTS]
        _, skus, category, name, price, most = self.rng.choices(PRODUCTS, weights)[0]
        return {
            "sku": self.rng.choice(skus),
            "name": name,
            "category": category,
            "quantity": self.rng.randint(1, most),
            "unit_price": price,
        }


def closed(kind: str, order_id: str) -> dict[str, Any]:
    return {"type": f"order.{kind}", "order": {"id": order_id}}


def write_orders(path: Path, orders: int, seed: int) -> int:
    shop = Shop(orders, random.Random(seed))
    for _ in range(orders):
        shop.order()
    shop.events.sort(key=lambda event: event[0])
    with path.open("w", encoding="utf-8") as out:
        for _, body in shop.events:
            out.write(json.dumps(body, separators=(",", ":")) + "\n")
    return len(shop.events)


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        # CPU time, not wall time: a busy machine slows a run down without making it slower.
        began = time.process_time()
        result = run()
        best = min(best, time.process_time() - began)
    return best, result


# The lines and their processes, inherited by the forked readers (as `--jobs` workers
# inherit them: not pickled).
_SPLIT: tuple[list[bytes], list[int]] = ([], [])


def read_shard(index: int) -> int:
    """Read and validate one process's lines (as a `--jobs` worker does); the bad lines."""
    lines, shards = _SPLIT
    mine = [raw if shard == index else b"" for raw, shard in zip(lines, shards, strict=True)]
    return len(parse_lines(mine)[1])


def forget_addresses() -> None:
    """Each run validates every address anew, as a fresh `aftersale simulate` does (the
    reader remembers valid addresses, and forked processes would inherit them)."""
    _email.cache_clear()


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(run: Callable[[], object]) -> tuple[float, float, float]:
    """Wall seconds; CPU seconds of this process; CPU seconds of the processes it forked."""
    wall, cpu, forked = time.perf_counter(), time.process_time(), children_cpu()
    run()
    return (
        time.perf_counter() - wall,
        time.process_time() - cpu,
        children_cpu() - forked,
    )


def one_rule(orders: int, seed: int, repeat: int, jobs: int | None) -> None:
    """The one-rule backtest: `aftersale simulate` split across processes, against reading
    and validating in one, in the same run on the same file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "orders.jsonl"
        events = write_orders(path, orders, seed)
        rules_dir = Path(folder) / "rules"
        rules_dir.mkdir()
        shutil.copy(ROOT / "rules" / "thank-you.yaml", rules_dir)
        # Every core, even for a small file (--quick): the split is what is measured.
        jobs = jobs or default_jobs(SPLIT_FROM_LINES)
        printed: dict[int, str] = {}

        def baseline() -> None:
            forget_addresses()
            with paused_gc():
                _, bad = parse_lines(path.read_bytes().split(b"\n"))
            assert not bad, bad[:3]

        def read_split() -> None:
            # The bound of the split: reading and validating alone, split as `--jobs` splits.
            forget_addresses()
            with paused_gc():
                global _SPLIT
                raw = path.read_bytes().split(b"\n")
                _SPLIT = (raw, split(raw, jobs))
                with multiprocessing.get_context("fork").Pool(jobs) as pool:
                    bad = pool.map(read_shard, range(jobs))
            assert not any(bad), bad

        def ours(processes: int) -> Callable[[], None]:
            def run() -> None:
                forget_addresses()
                out, err = io.StringIO(), io.StringIO()
                code = simulate_command(
                    orders=path,
                    rules_dir=rules_dir,
                    start=None,
                    until=None,
                    output_format="json",
                    default_time_zone="UTC",
                    stdout=out,
                    stderr=err,
                    jobs=processes,
                )
                assert code == 0 and not err.getvalue(), err.getvalue()
                printed[processes] = out.getvalue()

            return run

        # Interleaved, so that a busy spell of the machine falls on each about alike.
        read = split_run = one = split_read = (float("inf"), 0.0, 0.0)
        for _ in range(repeat):
            read = min(read, timed(baseline))
            split_read = min(split_read, timed(read_split))
            split_run = min(split_run, timed(ours(jobs)))
            one = min(one, timed(ours(1)))
    assert printed[jobs] == printed[1], "the split run printed something else"
    messages = printed[1].count("\n")
    read_rate, split_rate = orders / read[0], orders / split_run[0]
    print(
        f"one rule (thank-you), {orders:,} orders ({events:,} events, {messages:,} messages); "
        f"wall time, best of {repeat}; output identical with --jobs {jobs} and --jobs 1"
    )
    for label, (wall, cpu, forked) in (
        ("(a) read and validate only, 1 process", read),
        (f"(a') read and validate, {jobs} processes", split_read),
        ("(b) simulate --jobs 1, JSON output", one),
        (f"(c) simulate --jobs {jobs}, JSON output", split_run),
    ):
        print(
            f"{label + ':':39} {wall:6.2f} s  {orders / wall:9,.0f} orders/s  "
            f"(CPU: {cpu:5.2f} s here, {forked:5.2f} s in workers)"
        )
    # Were every process on a core of its own: this process's part (the split, the merge,
    # the output) plus one worker's share of theirs. An estimate, for a busy machine.
    for label, (_, cpu, forked) in (("(a')", split_read), ("(c)", split_run)):
        idle = cpu + forked / jobs
        print(
            f"    {label} with a free core per process (CPU time here, plus the workers' over "
            f"{jobs}): {idle:5.2f} s, {orders / idle:,.0f} orders/s"
        )
    print(
        f"simulate (one rule, {orders:,} orders, {jobs} jobs): ours {split_rate:,.0f} orders/s, "
        f"baseline {read_rate:,.0f} orders/s (read and validate only, one process), "
        f"ratio {split_rate / read_rate:.2f} (goal: 20,000 orders/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--one-rule-orders", type=int, default=70_000)
    parser.add_argument("--jobs", type=int, default=None, help="default: every core")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1, help="take the best of this many runs")
    args = parser.parse_args()
    one_rule(args.one_rule_orders, args.seed, args.repeat, args.jobs)
    rules = load_rules(ROOT / "rules")
    assert not rules.errors, rules.errors
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "orders.jsonl"
        events = write_orders(path, args.orders, args.seed)

        # Both as `aftersale simulate` runs them: with the garbage collector paused.
        def baseline() -> object:
            forget_addresses()
            with paused_gc():
                parsed, bad = parse_lines(path.read_bytes().split(b"\n"))
            assert not bad, bad[:3]
            return parsed

        def full() -> object:
            forget_addresses()
            with paused_gc():
                parsed, bad = parse_lines(path.read_bytes().split(b"\n"))
                assert not bad, bad[:3]
                result = simulate(parsed, rules=rules, default_time_zone="UTC")
                return result, sum(len(line) for line in json_lines(result))

        read_seconds, _ = best_of(args.repeat, baseline)
        full_seconds, outcome = best_of(args.repeat, full)
    result = outcome[0]  # type: ignore[index]
    print(
        f"{args.orders:,} orders ({events:,} events, {len(result.outcomes):,} messages) "
        f"with the rules in {ROOT / 'rules'}; CPU time, best of {args.repeat}"
    )
    read_rate, full_rate = args.orders / read_seconds, args.orders / full_seconds
    print(f"(a) read and validate only: {read_seconds:6.2f} s  {read_rate:9,.0f} orders/s")
    print(f"(b) simulate, JSON output:  {full_seconds:6.2f} s  {full_rate:9,.0f} orders/s")
    print(
        f"simulate: ours {full_rate:,.0f} orders/s, baseline {read_rate:,.0f} orders/s "
        f"(read and validate only), ratio {full_rate / read_rate:.2f} (goal: 20,000 orders/s)"
    )


if __name__ == "__main__":
    main()
