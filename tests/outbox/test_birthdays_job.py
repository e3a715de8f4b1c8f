"""The birthday job: customers with a birthday get one message per year, sent on time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from httpx import AsyncClient
from sqlalchemy import select

from app.jobs.birthdays import plan_birthday_messages
from app.models import Message
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink


async def test_birthday_planned_once_and_sent_in_local_morning(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(
        runtime,
        tmp_path,
        "rules:\n  - id: birthday\n    when: {event: birthday}\n"
        "    send: {at: -3d, time: '10:00'}\n    template: thank-you\n",
    )
    body = order_created()
    body["customer"]["birthday"] = "1990-12-05"  # Moscow customer in the factory's example
    body["customer"]["time_zone"] = "Europe/Moscow"
    await post_event(client, body)
    no_birthday = order_created(customer_id="c-2", email="b@example.org")
    no_birthday["customer"]["birthday"] = None
    await post_event(client, no_birthday)

    clock.current = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert await plan_birthday_messages(runtime) == 1
    assert await plan_birthday_messages(runtime) == 0  # a rerun (or a second worker) adds none
    async with runtime.session_factory() as session:
        message = (await session.execute(select(Message))).scalar_one()
    assert message.send_at == datetime(2026, 12, 2, 7, 0, tzinfo=UTC)  # 10:00 in Moscow
    assert message.order_id is None

    assert (await dispatcher.run_once()).claimed == 0
    clock.current = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert [mail.recipients for mail in smtp_sink.received] == [["anna@example.org"]]
