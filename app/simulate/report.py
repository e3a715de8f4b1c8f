"""A simulation as JSON Lines (one object per message) or as a table with per-rule totals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

from app.simulate.replay import STATUSES, Outcome, SimulationResult


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def json_lines(result: SimulationResult) -> Iterator[str]:
    for outcome in result.outcomes:
        yield json.dumps(
            {
                "send_at": iso_utc(outcome.send_at),
                "rule": outcome.rule,
                "template": outcome.template,
                "variant": outcome.variant,
                "kind": outcome.kind,
                "email": outcome.email,
                "customer_id": outcome.customer_id,
                "order_id": outcome.order_id,
                "status": outcome.status,
                "reason": outcome.reason,
                "step": outcome.step,
                "condition": outcome.condition,
                "recommendations": list(outcome.recommendations)
                if outcome.recommendations is not None
                else None,
            },
            ensure_ascii=False,
        )


_COLUMNS = (
    "send_at (UTC)",
    "rule",
    "step",
    "variant",
    "template",
    "email",
    "order",
    "status",
    "reason",
    "if",
)


def _row(outcome: Outcome) -> tuple[str, ...]:
    return (
        outcome.send_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        outcome.rule,
        str(outcome.step),
        outcome.variant or "-",
        outcome.template,
        outcome.email or "-",
        outcome.order_id or "-",
        outcome.status,
        outcome.reason or "-",
        outcome.condition or "-",
    )


def table(result: SimulationResult) -> Iterator[str]:
    """The timeline, then totals per rule and step, the reasons, then what falls after
    --until."""
    rows = [_row(outcome) for outcome in result.outcomes]
    yield from _aligned([_COLUMNS, *rows])
    yield ""
    totals = [
        (rule, str(step), *(str(counts[status]) for status in STATUSES), str(sum(counts.values())))
        for (rule, step), counts in sorted(result.step_totals.items())
    ]
    every = [sum(counts[status] for counts in result.totals.values()) for status in STATUSES]
    yield from _aligned(
        [
            ("rule", "step", *STATUSES, "total"),
            *totals,
            ("all rules", "", *(str(count) for count in every), str(sum(every))),
        ],
        numeric_from=1,
    )
    if result.reasons:
        yield ""
        yield from _aligned(
            [
                ("rule", "step", "status", "reason", "messages"),
                *(
                    (rule, str(step), status, reason, str(count))
                    for (rule, step, status, reason), count in sorted(result.reasons.items())
                ),
            ]
        )
    yield ""
    yield (
        f"{len(result.outcomes)} message(s) from {iso_utc(result.start)} "
        f"until {iso_utc(result.until)}; {result.beyond_until} beyond --until, not shown"
    )
    if result.unmatched_engagement:
        yield (
            f"{result.unmatched_engagement} opened/clicked/review line(s) named no message "
            "sent before them: ignored"
        )


def _aligned(rows: list[tuple[str, ...]], *, numeric_from: int | None = None) -> Iterator[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(width)
            if numeric_from is not None and column >= numeric_from
            else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        yield "  ".join(cells).rstrip()
