"""skip_if and rule removal, decided again when the message falls due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.lifecycle.checks import Purchase, SendFacts, rebought_reason, send_blocker
from app.models import Message
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink

RESTOCK = """
defaults: {kind: transactional}
rules:
  - id: restock
    when: {event: order.created, items: {category: [baby/diapers]}}
    send: {after: 1w}
    skip_if: [rebought_same_category]
    template: thank-you
"""


def diapers_order(order_id: str, created_at: str, category: str = "baby/diapers") -> dict:
    return order_created(
        order_id=order_id,
        created_at=created_at,
        items=[{"sku": f"SKU-{order_id}", "name": "Diapers", "category": category, "quantity": 1}],
    )


async def statuses(runtime: Runtime) -> list[tuple[str, str | None]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Message.status, Message.status_reason).order_by(Message.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_rebuy_before_the_reminder_skips_it(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RESTOCK)
    await post_event(client, diapers_order("1", "2026-11-20T09:00:00Z"))
    # Five days later the customer buys diapers again (another SKU, same category).
    await post_event(client, diapers_order("2", "2026-11-25T09:00:00Z", "baby/diapers/night"))
    clock.current = datetime(2026, 11, 27, 10, tzinfo=UTC)  # first reminder due, second not
    report = await dispatcher.run_once()
    assert report.outcomes == {"skipped": 1}
    assert smtp_sink.received == []
    assert await statuses(runtime) == [("skipped", "rebought_same_category"), ("scheduled", None)]


async def test_an_order_delivered_after_its_rebuy_is_skipped_when_planned(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    use_rules(runtime, tmp_path, RESTOCK)
    # The later order arrives first (or was imported); the earlier one comes late.
    await post_event(client, diapers_order("2", "2026-11-25T09:00:00Z"))
    await post_event(client, diapers_order("1", "2026-11-20T09:00:00Z"))
    assert await statuses(runtime) == [("scheduled", None), ("skipped", "rebought_same_category")]


async def test_reminder_goes_out_when_nothing_was_rebought(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RESTOCK)
    await post_event(client, diapers_order("1", "2026-11-20T09:00:00Z"))
    await post_event(client, diapers_order("2", "2026-11-25T09:00:00Z", "office/paper"))
    clock.current = datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert len(smtp_sink.received) == 1


async def test_removed_rule_holds_pending_but_a_broken_reload_does_not(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RESTOCK)
    await post_event(client, diapers_order("1", "2026-11-20T09:00:00Z"))
    await post_event(client, diapers_order("2", "2026-11-20T09:30:00Z", "baby/diapers"))
    (tmp_path / "rules.yaml").write_text("rules:\n  - id: [broken\n")
    assert not runtime.rules.reload()  # keeps the last good set
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    clock.current = datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert runtime.rules.reload()
    # Held, not cancelled: the rule may come back (tests/jobs/test_missing_rules.py).
    assert (await dispatcher.run_once()).outcomes == {"paused": 2}
    assert await statuses(runtime) == [("paused", "rule_missing")] * 2
    assert smtp_sink.received == []


NOW = datetime(2026, 11, 20, tzinfo=UTC)
BASE = SendFacts(
    kind="marketing",
    expires_at=None,
    customer_deleted=False,
    email="a@example.org",
    marketing_consent=True,
    suppressed=False,
    order_status="open",
)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, None),
        ({"rule_missing": True}, ("paused", "rule_missing")),
        ({"customer_deleted": True}, ("skipped", "customer_deleted")),
        ({"email": None}, ("skipped", "no_address")),
        ({"order_status": "cancelled"}, ("cancelled", "order_cancelled")),
        ({"order_status": "refunded"}, ("cancelled", "order_refunded")),
        ({"expires_at": NOW - timedelta(seconds=1)}, ("expired", "past_expiry")),
        ({"suppressed": True}, ("skipped", "suppressed")),
        ({"marketing_consent": False}, ("skipped", "no_consent")),
        ({"marketing_consent": False, "kind": "transactional"}, None),
    ],
)
def test_every_send_time_reason(changes: dict, expected: tuple[str, str] | None) -> None:
    facts = SendFacts(**{**BASE.__dict__, **changes})
    assert send_blocker(facts, now=NOW) == expected


def test_rebought_reasons() -> None:
    bought = [Purchase("DIAPER-M", "baby/diapers")]
    same_sku = [Purchase("DIAPER-M", "baby/diapers")]
    same_category = [Purchase("DIAPER-L", "baby/diapers/night")]
    unrelated = [Purchase("PAPER", "office/paper")]
    assert rebought_reason(["rebought_same_sku"], bought, same_sku) == "rebought_same_sku"
    assert rebought_reason(["rebought_same_sku"], bought, same_category) is None
    assert rebought_reason(["rebought_same_category"], bought, same_category) == (
        "rebought_same_category"
    )
    assert rebought_reason(["rebought_same_category"], bought, unrelated) is None
    assert rebought_reason(["rebought_any"], bought, unrelated) == "rebought_any"
    assert rebought_reason(["rebought_any"], bought, []) is None
    assert rebought_reason([], bought, same_sku) is None
