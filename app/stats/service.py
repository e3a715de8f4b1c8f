"""Stats: credit orders to the mail that brought them; answer the stats API from rollups.

Reads touch only the running totals (two rows per series for any span) and the series
list, never raw events, so they cost the same at any volume; NPS alone reads the survey
answers (one per message at most, indexed by time). Services flush, never commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models import Order, OrderStatus
from app.stats import repository
from app.stats.attribution import AttributionPolicy, Credit, Via, credit
from app.stats.repository import Vector
from app.stats.schemas import (
    Bucket,
    BucketRow,
    MessageStats,
    Overview,
    RuleRow,
    RulesStats,
    StepRow,
    StepsStats,
    TemplateRow,
    TemplatesStats,
    Timeseries,
)
from app.stats.tally import COUNTERS, SeriesKey
from app.survey.nps import NpsTally
from app.survey.repository import NpsGroup
from app.survey.service import nps_tallies

_CENT = Decimal("0.01")


def attribution_policy(settings: Settings) -> AttributionPolicy:
    return AttributionPolicy.of(
        window_days=settings.attribution_window_days, via=settings.attribution_via
    )


async def record_conversion(
    session: AsyncSession,
    *,
    order: Order,
    policy: AttributionPolicy,
    new_order: bool = False,
    new_customer: bool = False,
) -> Credit | None:
    """Credit a newly placed order to the customer's message that brought it, if any.

    Idempotent: one conversion per order, whatever repeats. Orders already cancelled or
    refunded when they arrive are not conversions. `new_order`, `new_customer`: created by
    this very delivery, so what cannot exist yet is not looked up (a conversion of the
    order; the customer's mail, hence their clicks and holdouts).
    """
    if order.customer_id is None or order.placed_at is None:
        return None
    if order.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
        return None
    if not new_order and await repository.has_conversion(session, order.id):
        return None
    since = order.placed_at - policy.window
    kinds = (Via.CLICK, Via.OPEN) if policy.count_opens else (Via.CLICK,)
    touches = (
        []
        if new_customer
        else await repository.latest_touches(
            session,
            customer_id=order.customer_id,
            order_id=order.id,
            since=since,
            until=order.placed_at,
            kinds=kinds,
        )
    )
    held_out = (
        []
        if new_customer
        else await repository.held_out_messages(
            session,
            customer_id=order.customer_id,
            order_id=order.id,
            since=since,
            until=order.placed_at,
        )
    )
    # Linked at intake just before (coupons.service.redeem_order_codes), from the order's
    # own codes: a new order that used none has none linked.
    redeemed = (
        []
        if new_order and not order.discount_codes
        else await repository.coupon_redemptions(session, order_id=order.id)
    )
    found = credit(
        placed_at=order.placed_at,
        touches=touches,
        held_out=held_out,
        policy=policy,
        redeemed=redeemed,
    )
    if found is None:
        return None
    await repository.add_conversion(
        session,
        order_id=order.id,
        credit=found,
        revenue=order.total,
        currency=order.currency,
        converted_at=order.placed_at,
    )
    return found


@dataclass(frozen=True)
class Span:
    """Whole UTC days, both ends included."""

    first: date
    last: date

    @classmethod
    def ending(cls, last: date, *, days: int) -> Span:
        return cls(last - timedelta(days=days - 1), last)


@dataclass
class _Sums:
    """The counts (in COUNTERS order) and revenue by currency of one row of an answer."""

    counts: list[int] = field(default_factory=lambda: [0] * len(COUNTERS))
    revenue: defaultdict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add(self, key: SeriesKey, values: Vector) -> None:
        """Add a series' values: counts, or revenue in the series' currency."""
        if key.currency:
            self.revenue[key.currency] += values[0]
        else:
            self.counts = [total + value for total, value in zip(self.counts, values, strict=True)]

    def minus(self, earlier: _Sums) -> _Sums:
        return _Sums(
            counts=[now - then for now, then in zip(self.counts, earlier.counts, strict=True)],
            revenue=defaultdict(
                Decimal,
                {cur: amount - earlier.revenue[cur] for cur, amount in self.revenue.items()},
            ),
        )

    def figures(self) -> dict[str, Any]:
        return figures(dict(zip(COUNTERS, self.counts, strict=True)), self.revenue)


async def _between(
    session: AsyncSession, span: Span, *, rule_id: str | None = None
) -> dict[SeriesKey, _Sums]:
    """Each series' figures within the span: its totals at the end less those before it."""
    keys = await repository.series_keys(session, rule_id=rule_id)
    found: dict[SeriesKey, _Sums] = {}
    for ledger, ids in _by_ledger(keys).items():
        at_end = await repository.running_on(session, ledger, dict.fromkeys(ids, span.last))
        # Nothing is counted before year 1, and the day before it cannot be named.
        before = (
            await repository.running_on(
                session, ledger, dict.fromkeys(ids, span.first - timedelta(days=1))
            )
            if span.first > date.min
            else {}
        )
        for series, values in at_end.items():
            end, start = _Sums(), _Sums()
            end.add(keys[series], values)
            start.add(keys[series], before.get(series, ledger.zero))
            found[keys[series]] = end.minus(start)
    return found


def _by_ledger(keys: Mapping[int, SeriesKey]) -> dict[repository.Ledger, list[int]]:
    return {
        repository.COUNTS: [id_ for id_, key in keys.items() if not key.currency],
        repository.REVENUE: [id_ for id_, key in keys.items() if key.currency],
    }


def _grouped(
    between: Mapping[SeriesKey, _Sums], group: Callable[[SeriesKey], Hashable]
) -> dict[Any, _Sums]:
    """Series added up by `group`; series with nothing in the span are left out (every
    figure is of messages of the span, so no message means nothing at all)."""
    sums: defaultdict[Any, _Sums] = defaultdict(_Sums)
    for key, part in between.items():
        if not any(part.counts) and not any(part.revenue.values()):
            continue
        total = sums[group(key)]
        total.counts = [a + b for a, b in zip(total.counts, part.counts, strict=True)]
        for currency, amount in part.revenue.items():
            total.revenue[currency] += amount
    return dict(sums)


def figures(counts: Mapping[str, int], revenue: Mapping[str, Decimal]) -> dict[str, Any]:
    """The counts, revenue and rates of one row, as the API shows them."""
    every = {name: int(counts.get(name, 0)) for name in COUNTERS}

    def ratio(part: str, whole: str) -> float | None:
        return every[part] / every[whole] if every[whole] else None

    conversion, holdout = ratio("converted", "sent"), ratio("held_out_converted", "held_out")
    lift = conversion / holdout - 1 if conversion is not None and holdout else None
    rates = {
        "open_rate": ratio("opened", "sent"),
        "click_rate": ratio("clicked", "sent"),
        "unsubscribe_rate": ratio("unsubscribed", "sent"),
        "complaint_rate": ratio("complained", "sent"),
        "conversion_rate": conversion,
        "holdout_conversion_rate": holdout,
        "lift": lift,
    }
    return {
        **every,
        "revenue": {cur: _money(amount) for cur, amount in sorted(revenue.items()) if amount},
        "nps": None,  # from survey answers, not the rollups: the callers put it in (_nps)
        **{name: None if rate is None else round(rate, 4) for name, rate in rates.items()},
    }


def _money(amount: Decimal) -> str:
    """Cents always, and more digits only when the amount has them: "49.80", "0.125"."""
    cents = amount.quantize(_CENT)
    return str(cents if cents == amount else amount.normalize())


async def overview(session: AsyncSession, *, span: Span, rule: str | None = None) -> Overview:
    """The totals of every rule, or of one `rule` (all its variants and steps)."""
    between = await _between(session, span, rule_id=rule)
    total = _grouped(between, lambda key: None).get(None, _Sums())
    nps = (
        (await _nps(session, span)).get(())
        if rule is None
        else (await _nps(session, span, ("rule",))).get((rule,))
    )
    return Overview.model_validate(
        {
            "from": span.first,
            "to": span.last,
            "rolled_up_at": await repository.rolled_up_at(session),
            **total.figures(),
            "nps": nps,
        }
    )


async def by_rule(session: AsyncSession, *, span: Span) -> RulesStats:
    between = await _between(session, span)
    templates: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for key, part in between.items():
        if any(part.counts):
            templates[(key.rule_id, key.variant)].add(key.template)
    grouped = _grouped(between, lambda key: (key.rule_id, key.variant))
    nps = await _nps(session, span, ("rule", "variant"))
    rows = [
        RuleRow.model_validate(
            {
                "rule": rule,
                "variant": variant or None,
                "template": ",".join(sorted(templates[(rule, variant)])),
                **sums.figures(),
                "nps": nps.get((rule, variant or None)),
            }
        )
        for (rule, variant), sums in sorted(grouped.items())
    ]
    return RulesStats.model_validate(
        {
            "from": span.first,
            "to": span.last,
            "rolled_up_at": await repository.rolled_up_at(session),
            "rows": rows,
        }
    )


async def by_step(session: AsyncSession, *, span: Span) -> StepsStats:
    """Each rule's figures per variant and step of its sequence (a rule without steps has
    one row per variant, step 1: the same figures as `by_rule`)."""
    between = await _between(session, span)
    templates: defaultdict[tuple[str, str, int], set[str]] = defaultdict(set)
    for key, part in between.items():
        if any(part.counts):
            templates[(key.rule_id, key.variant, key.step)].add(key.template)
    grouped = _grouped(between, lambda key: (key.rule_id, key.variant, key.step))
    nps = await _nps(session, span, ("rule", "variant", "step"))
    rows = [
        StepRow.model_validate(
            {
                "rule": rule,
                "variant": variant or None,
                "step": step,
                "template": ",".join(sorted(templates[(rule, variant, step)])),
                **sums.figures(),
                "nps": nps.get((rule, variant or None, step)),
            }
        )
        for (rule, variant, step), sums in sorted(grouped.items())
    ]
    return StepsStats.model_validate(
        {
            "from": span.first,
            "to": span.last,
            "rolled_up_at": await repository.rolled_up_at(session),
            "rows": rows,
        }
    )


async def by_template(session: AsyncSession, *, span: Span) -> TemplatesStats:
    grouped = _grouped(await _between(session, span), lambda key: key.template)
    nps = await _nps(session, span, ("template",))
    rows = [
        TemplateRow.model_validate(
            {"template": template, **sums.figures(), "nps": nps.get((template,))}
        )
        for template, sums in sorted(grouped.items())
    ]
    return TemplatesStats.model_validate(
        {
            "from": span.first,
            "to": span.last,
            "rolled_up_at": await repository.rolled_up_at(session),
            "rows": rows,
        }
    )


async def _nps(
    session: AsyncSession, span: Span, group_by: Sequence[NpsGroup] = ()
) -> dict[tuple[Any, ...], float | None]:
    """NPS of the span's messages by the values of `group_by`, from their survey answers
    (docs/stats.md: read directly, not rolled up)."""
    tallies = await nps_tallies(session, first=span.first, last=span.last, group_by=group_by)
    return {key: tally.nps for key, tally in tallies.items()}


def buckets(span: Span, bucket: Bucket) -> list[Span]:
    """The span cut into days, or into ISO weeks (Monday to Sunday) clipped to the span."""
    found = []
    start = span.first
    while start <= span.last:
        end = start if bucket == "day" else start + timedelta(days=6 - start.weekday())
        found.append(Span(start, min(end, span.last)))
        start = found[-1].last + timedelta(days=1)
    return found


async def timeseries(
    session: AsyncSession,
    *,
    rule_id: str,
    variant: str | None,
    bucket: Bucket,
    span: Span,
    rule_is_loaded: bool,
) -> Timeseries | None:
    """The rule's figures per bucket; None for a rule that is neither loaded nor counted."""
    keys = await repository.series_keys(session, rule_id=rule_id)
    if not keys and not rule_is_loaded:
        return None
    if variant is not None:
        keys = {id_: key for id_, key in keys.items() if key.variant == variant}
    rows = await _bucket_rows(session, keys, bucket=bucket, span=span)
    by_day = await nps_tallies(
        session, first=span.first, last=span.last, group_by=("day", "variant"), rule_id=rule_id
    )
    for row in rows:
        tally = sum(
            (
                part
                for (day, answered_variant), part in by_day.items()
                if row.start.isoformat() <= day <= row.end.isoformat()
                and (variant is None or (answered_variant or "") == variant)
            ),
            NpsTally(),
        )
        row.nps = tally.nps
    return Timeseries.model_validate(
        {
            "from": span.first,
            "to": span.last,
            "rolled_up_at": await repository.rolled_up_at(session),
            "rule": rule_id,
            "variant": variant,
            "bucket": bucket,
            "rows": rows,
        }
    )


async def all_rules_timeseries(
    session: AsyncSession, *, bucket: Bucket, span: Span
) -> list[BucketRow]:
    """Every rule's figures together, per bucket (the dashboard's charts)."""
    keys = await repository.series_keys(session)
    return await _bucket_rows(session, keys, bucket=bucket, span=span)


async def _bucket_rows(
    session: AsyncSession, keys: Mapping[int, SeriesKey], *, bucket: Bucket, span: Span
) -> list[BucketRow]:
    """The figures of the series `keys` per bucket, from the running totals."""
    parts = buckets(span, bucket)
    # The totals at the end of each bucket, and the day before the first: each bucket is
    # the difference of two neighbours.
    ends = [span.first - timedelta(days=1), *(part.last for part in parts)]
    totals = [_Sums() for _ in ends]
    for ledger, ids in _by_ledger(keys).items():
        before = await repository.running_on(session, ledger, dict.fromkeys(ids, ends[0]))
        rows: defaultdict[int, list[tuple[date, Vector]]] = defaultdict(list)
        for series, day, values in await repository.running_rows(
            session, ledger, series_ids=ids, first=span.first, last=span.last
        ):
            rows[series].append((day, values))
        for series in ids:
            current: Vector | None = before.get(series)
            upcoming = iter(rows[series])
            step = next(upcoming, None)
            for index, end in enumerate(ends):
                while step is not None and step[0] <= end:
                    current, step = step[1], next(upcoming, None)
                if current is not None:
                    totals[index].add(keys[series], current)
    return [
        BucketRow.model_validate(
            {
                "start": part.first,
                "end": part.last,
                **totals[index + 1].minus(totals[index]).figures(),
            }
        )
        for index, part in enumerate(parts)
    ]


async def message_stats(session: AsyncSession, *, message_id: int) -> MessageStats | None:
    found = await repository.message_tally(session, message_id)
    if found is None:
        return None
    tally, key = found
    return MessageStats(
        message_id=tally.message_id,
        rule=key.rule_id,
        variant=key.variant or None,
        template=key.template,
        day=tally.day,
        status=tally.status,
        bounced=tally.bounced or tally.bounced_async,
        bounced_async=tally.bounced_async,
        soft_bounced=tally.soft_bounced,
        complained=tally.complained,
        opened=tally.opens > 0,
        opens=tally.opens,
        opens_machine=tally.opens_machine,
        opens_unknown=tally.opens_unknown,
        clicked=tally.clicks > 0,
        clicks=tally.clicks,
        clicks_machine=tally.clicks_machine,
        clicks_unknown=tally.clicks_unknown,
        unsubscribed=tally.unsubscribed,
        conversions=tally.conversions,
    )
