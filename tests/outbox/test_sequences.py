"""The shipped two-step diapers restock end to end: signed webhooks over HTTP, the real
dispatcher on a fake clock, a real SMTP sink, opens through the tracking pixel; and the same
orders through `aftersale simulate`, which must decide every message alike."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select

from app.config import ROOT
from app.models import Customer, Message, MessageStatus, Order
from app.runtime import Runtime
from app.simulate.replay import PLANNED
from tests.conftest import FrozenClock
from tests.factories import post_event
from tests.outbox.conftest import make_dispatcher, use_rules
from tests.simulate.test_parity import DIAPERS, UNTIL, Found, _order, _sorted, through_simulate
from tests.smtp_sink import SmtpSink

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Safari/605.1.15"
)
START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
# 2 packs: 10d12h after the order (Mon 30 Nov, 22:59 Berlin), outside mon-sat 09-20: Tuesday.
REMINDER_AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
# 5 days after the reminder went is Sunday 6 Dec: Monday 7 Dec, 09:00 Berlin.
NUDGE_AT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def bodies() -> list[dict[str, Any]]:
    return [
        _order("9001", "c-anna", "anna@example.org", day=0, items=[DIAPERS]),
        _order("9002", "c-boris", "boris@example.org", day=0, items=[DIAPERS]),
        _order("9003", "c-carla", "carla@example.org", day=0, items=[DIAPERS]),
        _order("9004", "c-dora", "dora@example.org", day=0, items=[DIAPERS]),
        # Dora buys diapers again after the reminder: the sequence of her first order ends.
        _order("9014", "c-dora", "dora@example.org", day=12, items=[DIAPERS]),
    ]


class Service:
    """The service on a fake clock: webhooks in time order, the dispatcher at each due time."""

    def __init__(self, client: AsyncClient, runtime: Runtime, clock: FrozenClock) -> None:
        self.client, self.runtime, self.clock = client, runtime, clock
        self.dispatcher = make_dispatcher(runtime, "worker-steps")
        self.decided_at: dict[int, datetime] = {}

    async def next_due(self) -> datetime | None:
        async with self.runtime.session_factory() as session:
            return (
                await session.execute(
                    select(Message.next_attempt_at)
                    .where(Message.status == MessageStatus.SCHEDULED)
                    .order_by(Message.next_attempt_at)
                    .limit(1)
                )
            ).scalar_one_or_none()

    async def run_until(self, moment: datetime) -> None:
        while (due := await self.next_due()) is not None and due <= moment:
            self.clock.current = max(self.clock.current, due)
            async with self.runtime.session_factory() as session:
                claimed = (
                    await session.execute(
                        select(Message.id).where(
                            Message.status == MessageStatus.SCHEDULED,
                            Message.next_attempt_at <= self.clock.current,
                        )
                    )
                ).scalars()
                ids = list(claimed)
            await self.dispatcher.drain()
            for message_id in ids:
                self.decided_at.setdefault(message_id, self.clock.current)
        self.clock.current = max(self.clock.current, moment)

    async def post(self, body: dict[str, Any]) -> None:
        at = datetime.fromisoformat(body["occurred_at"].replace("Z", "+00:00"))
        await self.run_until(at)
        response = await post_event(self.client, body)
        assert response.status_code == 200, response.text

    async def found(self) -> tuple[Found, dict[tuple[str, int], tuple[str, str | None]]]:
        """As tests/simulate/test_parity.py reads it; and (customer, step) -> status, reason."""
        found: Found = {}
        steps = {}
        async with self.runtime.session_factory() as session:
            rows = await session.execute(
                select(Message, Order.external_id, Customer.external_id)
                .join(Customer, Customer.id == Message.customer_id)
                .outerjoin(Order, Order.id == Message.order_id)
            )
            for message, order_id, customer_id in rows:
                assert message.status != MessageStatus.SCHEDULED or message.send_at > UNTIL
                if message.status == MessageStatus.SCHEDULED:
                    continue
                if message.status == MessageStatus.SENT:
                    status, when = PLANNED, message.sent_at
                else:
                    status = message.status
                    when = self.decided_at.get(message.id, message.next_attempt_at)
                assert when is not None
                key = (order_id or customer_id, message.rule_id)
                seen = (status, message.status_reason, when.astimezone(UTC), message.variant)
                found.setdefault(key, []).append(seen)
                steps[order_id, message.step] = (status, message.status_reason, when)
        return _sorted(found), steps


def pixel(html: str) -> str:
    [url] = re.findall(r'src="https?://[^"/]+(/o/[^"]+)"', html)
    return url


async def test_the_two_step_restock_through_the_service_and_simulate(
    client: AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    capsys: Any,
) -> None:
    rules_dir = tmp_path / "sequence-rules"
    rules_dir.mkdir()
    use_rules(runtime, rules_dir, (ROOT / "rules" / "diapers-restock.yaml").read_text())
    clock.current = START
    service = Service(client, runtime, clock)
    try:
        for body in bodies()[:4]:
            await service.post(body)
        await service.run_until(REMINDER_AT)
        reminders = {mail.recipients[0]: mail for mail in smtp_sink.received}
        assert sorted(reminders) == [
            "anna@example.org",
            "boris@example.org",
            "carla@example.org",
            "dora@example.org",
        ]
        assert all(
            mail.message["Subject"] == "Time to restock for your little one?"
            for mail in reminders.values()
        )
        # An hour later Boris reads it in his browser; Carla's mail scanner only looks (HEAD,
        # and a fetch seconds after delivery): a machine open is no open.
        clock.current = REMINDER_AT + timedelta(hours=1)
        boris = pixel(reminders["boris@example.org"].part("text/html"))
        assert (await client.get(boris, headers={"User-Agent": BROWSER})).status_code == 200
        carla = pixel(reminders["carla@example.org"].part("text/html"))
        assert (await client.head(carla, headers={"User-Agent": BROWSER})).status_code == 200
        for body in bodies()[4:]:
            await service.post(body)
        await service.run_until(UNTIL)
    finally:
        await service.dispatcher.sender.close()

    found, steps = await service.found()
    assert steps["9001", 1] == (PLANNED, None, REMINDER_AT)
    assert steps["9001", 2] == (PLANNED, None, NUDGE_AT)  # not opened, nothing rebought
    assert steps["9002", 2] == ("skipped", "if_not_opened", NUDGE_AT)  # opened by a person
    assert steps["9003", 2] == (PLANNED, None, NUDGE_AT)  # a machine's open does not count
    assert steps["9004", 2] == ("skipped", "exit_purchased", NUDGE_AT)  # bought again
    # Dora's second order is a sequence of its own, and nothing was bought after it.
    assert steps["9014", 1][0] == steps["9014", 2][0] == PLANNED
    nudges = [
        mail.recipients[0]
        for mail in smtp_sink.received
        if str(mail.message["Subject"]).startswith("Still running low")
    ]
    assert sorted(nudges) == ["anna@example.org", "carla@example.org", "dora@example.org"]
    assert len(smtp_sink.received) == 4 + 1 + 3  # reminders, Dora's second, nudges
    assert "This is the last reminder" in next(
        mail.part("text/plain")
        for mail in smtp_sink.received
        if mail.recipients == ["anna@example.org"] and "Still" in str(mail.message["Subject"])
    )

    # Told that Boris opened the reminder (a line of the input), simulate decides every
    # message as the service did.
    opened = {
        "type": "message.opened",
        "occurred_at": (REMINDER_AT + timedelta(hours=1)).isoformat(),
        "order": {"id": "9002"},
        "rule": "diapers-restock",
        "step": 1,
    }
    assert through_simulate([*bodies(), opened], rules_dir, tmp_path, capsys) == found
    # Told nothing, it assumes nobody opened anything: Boris's nudge would go.
    simulated = through_simulate(bodies(), rules_dir, tmp_path, capsys)
    boris_key = ("9002", "diapers-restock")
    assert simulated[boris_key] == [
        (PLANNED, None, REMINDER_AT, None),
        (PLANNED, None, NUDGE_AT, None),
    ]
    del simulated[boris_key], found[boris_key]
    assert simulated == found
