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
                "recommendations": list(outcome.recommendations)
                if outcome.recommendations is not None
                else None,
            },
            ensure_ascii=False,
        )


_COLUMNS = ("send_at (UTC)", "rule", "variant", "template", "email", "order", "status", "reason")


def _row(outcome: Outcome) -> tuple[str, ...]:
    return (
        outcome.send_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        outcome.rule,
        outcome.variant or "-",
        outcome.template,
        outcome.email or "-",
        outcome.order_id or "-",
        outcome.status,
        outcome.reason or "-",
    )


def table(result: SimulationResult) -> Iterator[str]:
    """The timeline, then per-rule totals, then what falls after --until."""
    rows = [_row(outcome) for outcome in result.outcomes]
    yield from _aligned([_COLUMNS, *rows])
    yield ""
    totals = [
        (rule, *(str(counts[status]) for status in STATUSES), str(sum(counts.values())))
        for rule, counts in sorted(result.totals.items())
    ]
    every = [sum(counts[status] for counts in result.totals.values()) for status in STATUSES]
    yield from _aligned(
        [
            ("rule", *STATUSES, "total"),
            *totals,
            ("all rules", *(str(count) for count in every), str(sum(every))),
        ],
        numeric_from=1,
    )
    yield ""
    yield (
        f"{len(result.outcomes)} message(s) from {iso_utc(result.start)} "
        f"until {iso_utc(result.until)}; {result.beyond_until} beyond --until, not shown"
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
