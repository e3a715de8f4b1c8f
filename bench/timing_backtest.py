"""Timing that lands: learned replenishment reminders against a marketer who knows the median,
backtested on real order history (the Complete Journey, bench/data/README.md).

Twelve consumable categories (coffee, paper towels, cat food, diapers, ...) of 2,469 households'
2017 purchases. Every order is replayed in time order through the real planner with two rules
per category:

- ours: `learned: {fallback: M..M, lead: 4d, min_chance: 14%}`, which only knows the past, as
  the service would (the customer's earlier orders, every customer's gaps observed so far);
- baseline: `after: M`, a reminder fixed at the category's median gap M.

M is each category's median gap between purchases closed in the training period (January to
June); both are scored only on purchases made in the evaluation period (July to December).
Purchases of one category less than a day apart are one purchase, as the planner counts them;
its reminder is the one planned at its latest order.

A reminder **lands** when the customer's next purchase of that category comes at most 4 days
after it. A reminder due after the customer has already rebought is never sent (the rebuy
supersedes it); one due before the end of the data for a customer who never rebought is sent
and misses; one due after the end of the data is unknown and not counted.

- coverage: landed reminders / repurchases (purchases in the period followed by another);
- precision: landed reminders / reminders sent.

    python bench/timing_backtest.py [--min-chance 14] [--split 2017-07-01]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import re
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.planner.learned import SAME_PURCHASE, GapStats, PastOrder, latest_gap
from app.planner.planner import History, plan_order_event
from app.rules.facts import ItemFacts, OrderFacts
from app.rules.loader import RuleSet, load_rules

DATA = Path(__file__).with_name("data") / "completejourney_replenishment.csv.gz"
WINDOW = timedelta(days=4)
LEAD = "4d"


@dataclass(frozen=True)
class Line:
    customer: int
    placed_at: datetime
    category: str
    product: str
    quantity: int


def slug(category: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", category.lower()).strip("-")


def read(path: Path) -> list[Line]:
    with gzip.open(path, "rt", newline="") as handle:
        return [
            Line(
                customer=int(row["customer"]),
                placed_at=datetime.fromisoformat(row["placed_at"]).replace(tzinfo=UTC),
                category=slug(row["category"]),
                product=row["product"],
                quantity=int(row["quantity"]),
            )
            for row in csv.DictReader(handle)
        ]


def purchase_starts(lines: list[Line]) -> dict[tuple[str, int], list[datetime]]:
    """Each customer's purchases of each category (start times), merged as the planner does."""
    starts: dict[tuple[str, int], list[datetime]] = defaultdict(list)
    last: dict[tuple[str, int], datetime] = {}
    for line in sorted(lines, key=lambda line: line.placed_at):
        key = (line.category, line.customer)
        if key in last and line.placed_at - last[key] < SAME_PURCHASE:
            last[key] = line.placed_at
            continue
        starts[key].append(line.placed_at)
        last[key] = line.placed_at
    return starts


def training_medians(
    starts: dict[tuple[str, int], list[datetime]], split: datetime
) -> dict[str, float]:
    gaps: dict[str, list[float]] = defaultdict(list)
    for (category, _), times in starts.items():
        gaps[category] += [
            (later - earlier).total_seconds() / 86_400
            for earlier, later in zip(times, times[1:], strict=False)
            if later < split
        ]
    return {category: statistics.median(days) for category, days in gaps.items()}


def rules_for(medians: dict[str, float], min_chance: float) -> str:
    out = ["rules:"]
    for category, days in sorted(medians.items()):
        median = f"{round(days * 24)}h"
        when = f"{{event: order.created, items: {{category: [{category}]}}}}"
        out += [
            f"  - id: ours-{category}",
            "    kind: transactional",
            f"    when: {when}",
            f"    send: {{learned: {{fallback: {median}..{median}, lead: {LEAD}, "
            f"min_chance: {min_chance}%}}}}",
            "    template: t",
            f"  - id: baseline-{category}",
            "    kind: transactional",
            f"    when: {when}",
            f"    send: {{after: {median}}}",
            "    template: t",
        ]
    return "\n".join(out) + "\n"


@dataclass
class Score:
    repurchases: int = 0
    sent: int = 0
    landed: int = 0

    def add(self, send_at: datetime | None, next_at: datetime | None, end: datetime) -> None:
        if next_at is not None:
            self.repurchases += 1
        if send_at is None or send_at >= (next_at or end):
            return  # none planned, superseded by the rebuy, or past the data
        self.sent += 1
        if next_at is not None and next_at - send_at <= WINDOW:
            self.landed += 1

    @property
    def coverage(self) -> float:
        return self.landed / max(self.repurchases, 1)

    @property
    def precision(self) -> float:
        return self.landed / max(self.sent, 1)


@dataclass
class Reminders:
    """The reminder each rule planned for each purchase, by its start time."""

    by_start: dict[tuple[str, int, datetime], datetime | None] = field(default_factory=dict)


def replay(
    rules: RuleSet, lines: list[Line], starts: dict[tuple[str, int], list[datetime]]
) -> dict[str, Reminders]:
    orders: dict[tuple[int, datetime], list[Line]] = defaultdict(list)
    for line in lines:
        orders[(line.customer, line.placed_at)].append(line)
    reminders = {"ours": Reminders(), "baseline": Reminders()}
    histories: dict[int, list[PastOrder]] = defaultdict(list)
    gaps: dict[str, GapStats] = defaultdict(GapStats)
    current: dict[tuple[str, int], datetime] = {}  # the purchase an order belongs to
    learned_rules = [rule for rule in rules.rules if rule.send.learned is not None]
    for number, ((customer, placed_at), bought) in enumerate(sorted(orders.items())):
        items = tuple(
            ItemFacts(line.product, line.category, quantity=line.quantity) for line in bought
        )
        past = histories[customer]
        planned = plan_order_event(
            event="order.created",
            occurred_at=placed_at,
            order=OrderFacts(id=number, status="open", placed_at=placed_at, items=items),
            customer_id=customer,
            rules=rules,
            history=History(orders=past, product_gaps=dict(gaps)),
        )
        this = PastOrder(placed_at=placed_at, items=items)
        for rule in learned_rules:
            gap = latest_gap(rule, past, this)
            if gap is not None:
                gaps[rule.id] = gaps[rule.id].add(gap)
        past.append(this)
        sent = {plan.rule_id: plan.send_at for plan in planned}
        for category in {line.category for line in bought}:
            key = (category, customer)
            times = starts[key]
            if placed_at in times:
                current[key] = placed_at
            start = current[key]
            for name in reminders:
                reminders[name].by_start[(category, customer, start)] = sent.get(
                    f"{name}-{category}"
                )
    return reminders


def score(
    reminders: Reminders,
    starts: dict[tuple[str, int], list[datetime]],
    *,
    split: datetime,
    end: datetime,
) -> dict[str, Score]:
    scores: dict[str, Score] = defaultdict(Score)
    for (category, customer), times in starts.items():
        for index, start in enumerate(times):
            if start < split:
                continue
            next_at = times[index + 1] if index + 1 < len(times) else None
            send_at = reminders.by_start[(category, customer, start)]
            scores[category].add(send_at, next_at, end)
            scores["all"].add(send_at, next_at, end)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-chance", type=float, default=14.0, help="percent, ours' rule")
    parser.add_argument("--split", default="2017-07-01", help="evaluation starts (UTC date)")
    args = parser.parse_args()
    split = datetime.fromisoformat(args.split).replace(tzinfo=UTC)
    lines = read(DATA)
    end = max(line.placed_at for line in lines)
    starts = purchase_starts(lines)
    medians = training_medians(starts, split)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "rules.yaml").write_text(rules_for(medians, args.min_chance))
        rules = load_rules(Path(folder))
    assert not rules.errors, rules.errors
    began = time.perf_counter()
    reminders = replay(rules, lines, starts)
    elapsed = time.perf_counter() - began
    ours = score(reminders["ours"], starts, split=split, end=end)
    baseline = score(reminders["baseline"], starts, split=split, end=end)
    customers = len({line.customer for line in lines})
    print(
        f"{len(lines)} order lines of {customers} households, {len(medians)} categories, "
        f"replayed through the real planner in {elapsed:.1f} s; trained before {args.split}, "
        f"scored from it to {end:%Y-%m-%d}; a reminder lands at most {WINDOW.days} days "
        "before the repurchase"
    )
    print(
        f"{'category':<22} {'median':>6} {'rebuys':>6} | {'ours sent':>9} {'cov':>6} "
        f"{'prec':>6} | {'base sent':>9} {'cov':>6} {'prec':>6}"
    )
    for category in [*sorted(medians), "all"]:
        mine, theirs = ours[category], baseline[category]
        median = f"{medians[category]:.1f}d" if category in medians else ""
        print(
            f"{category:<22} {median:>6} {mine.repurchases:>6} | {mine.sent:>9} "
            f"{100 * mine.coverage:>5.1f}% {100 * mine.precision:>5.1f}% | {theirs.sent:>9} "
            f"{100 * theirs.coverage:>5.1f}% {100 * theirs.precision:>5.1f}%"
        )
    mine, theirs = ours["all"], baseline["all"]
    print(
        f"timing-coverage: ours {100 * mine.coverage:.1f}% of repurchases had a reminder "
        f"landing, baseline {100 * theirs.coverage:.1f}% (fixed at each category's median "
        f"gap), ratio {mine.coverage / max(theirs.coverage, 1e-9):.2f} (higher is better)"
    )
    print(
        f"timing-precision: ours {100 * mine.precision:.1f}% of reminders sent landed, "
        f"baseline {100 * theirs.precision:.1f}%, ratio "
        f"{mine.precision / max(theirs.precision, 1e-9):.2f} (higher is better)"
    )
    print(
        f"ours sent {mine.sent} reminders, baseline {theirs.sent}; ours sent none for "
        f"purchases whose estimated chance of landing was below {args.min_chance:g}%"
    )


if __name__ == "__main__":
    main()
