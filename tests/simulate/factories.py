"""Webhook bodies for replays, and a replay of them with rules written to a folder."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.events import Envelope
from app.intake.jsonl import parse_line
from app.rules.loader import RuleSet, load_rules
from app.simulate.replay import Outcome, SimulationResult, simulate

PLACED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a Friday
_serial = itertools.count(1)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def customer(number: int = 1, **changes: Any) -> dict[str, Any]:
    return {
        "id": f"c-{number}",
        "email": f"c{number}@example.org",
        "time_zone": "UTC",
        "marketing_consent": True,
        **changes,
    }


def item(sku: str = "X-1", category: str = "misc", quantity: int = 1) -> dict[str, Any]:
    return {"sku": sku, "name": sku, "category": category, "quantity": quantity}


def created(
    order_id: str,
    *,
    at: datetime = PLACED,
    items: list[dict[str, Any]] | None = None,
    buyer: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": event_id or f"evt-{next(_serial)}",
        "type": "order.created",
        "occurred_at": iso(at),
        "order": {
            "id": order_id,
            "created_at": iso(at),
            "currency": "EUR",
            "total": "10.00",
            "items": items or [item()],
        },
        "customer": buyer or customer(),
    }


def order_event(kind: str, order_id: str, *, at: datetime) -> dict[str, Any]:
    return {
        "id": f"evt-{next(_serial)}",
        "type": f"order.{kind}",
        "occurred_at": iso(at),
        "order": {"id": order_id},
    }


def customer_event(kind: str, body: dict[str, Any], *, at: datetime) -> dict[str, Any]:
    return {
        "id": f"evt-{next(_serial)}",
        "type": f"customer.{kind}",
        "occurred_at": iso(at),
        "customer": body,
    }


def rules_in(folder: Path, text: str) -> RuleSet:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(text)
    rules = load_rules(folder)
    assert rules.errors == ()
    return rules


def events(*bodies: dict[str, Any]) -> list[Envelope]:
    return [parse_line(json.dumps(body).encode()) for body in bodies]


def replay(
    rules: RuleSet,
    *bodies: dict[str, Any],
    start: datetime | None = None,
    until: datetime | None = None,
) -> SimulationResult:
    return simulate(events(*bodies), rules=rules, start=start, until=until)


def timeline(result: SimulationResult) -> list[tuple[str, datetime, str, str | None]]:
    """(rule, send_at, status, reason) of each listed message."""
    return [(o.rule, o.send_at, o.status, o.reason) for o in result.outcomes]


def by_rule(result: SimulationResult) -> dict[str, list[Outcome]]:
    found: dict[str, list[Outcome]] = {}
    for outcome in result.outcomes:
        found.setdefault(outcome.rule, []).append(outcome)
    return found


def days(number: float) -> timedelta:
    return timedelta(days=number)
