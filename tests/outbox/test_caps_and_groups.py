"""Frequency caps and priority at send time; holdout and variants in the outbox."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from httpx import AsyncClient
from sqlalchemy import select

from app.jobs.missing_rules import Reconciled, reconcile_missing_rules
from app.models import Message
from app.outbox.dispatcher import Dispatcher
from app.planner.assign import assign
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink

COMPETING = """
limits:
  marketing: {max: 1, per: 7d}
rules:
  - id: low
    when: {event: order.created}
    send: {after: 1d, expires: EXPIRES}
    priority: 20
    template: thank-you
  - id: high
    when: {event: order.created}
    send: {after: 1d}
    priority: 80
    template: thank-you
"""


async def by_rule(runtime: Runtime) -> dict[str, Message]:
    async with runtime.session_factory() as session:
        rows = (await session.execute(select(Message).order_by(Message.id))).scalars()
        return {message.rule_id: message for message in rows}


async def test_higher_priority_wins_and_the_other_waits_for_the_next_free_slot(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, COMPETING.replace("EXPIRES", "10d"))
    await post_event(client, order_created())
    clock.advance(days=1)
    report = await dispatcher.drain()
    assert report.outcomes == {"sent": 1, "deferred": 1}
    messages = await by_rule(runtime)
    assert messages["high"].status == "sent" and messages["low"].status == "scheduled"
    assert messages["low"].status_reason == "frequency_cap"
    assert messages["low"].attempts == 0  # waiting for a slot is not a delivery attempt

    # Looking again (at the latest after a minute), it sees the real next free slot.
    clock.advance(minutes=2)
    await dispatcher.drain()
    messages = await by_rule(runtime)
    sent_at = messages["high"].sent_at
    assert sent_at is not None
    assert messages["low"].next_attempt_at == sent_at + timedelta(days=7)

    clock.advance(days=6)
    assert (await dispatcher.drain()).claimed == 0
    clock.current = sent_at + timedelta(days=7)
    assert (await dispatcher.drain()).outcomes == {"sent": 1}
    assert len(smtp_sink.received) == 2


async def test_a_capped_message_that_would_expire_first_is_skipped(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, COMPETING.replace("EXPIRES", "3d"))
    await post_event(client, order_created())
    clock.advance(days=1)
    await dispatcher.drain()
    clock.advance(minutes=2)
    await dispatcher.drain()
    messages = await by_rule(runtime)
    assert (messages["low"].status, messages["low"].status_reason) == ("skipped", "frequency_cap")
    assert messages["high"].status == "sent"


async def test_a_rule_limit_counts_that_rule_alone(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(
        runtime,
        tmp_path,
        "rules:\n  - id: monthly\n    when: {event: order.created}\n"
        "    limit: {max: 1, per: 30d}\n    template: thank-you\n"
        "  - id: other\n    when: {event: order.created}\n    template: thank-you\n",
    )
    await post_event(client, order_created(created_at="2026-11-20T09:00:00Z"))
    await post_event(client, order_created(created_at="2026-11-20T09:30:00Z"))
    report = await dispatcher.drain()
    assert report.outcomes == {"sent": 3, "deferred": 1}  # `other` twice, `monthly` once
    sent_at = clock.now()
    # The older of the two goes first. The other, if it looked while the first was still in
    # flight, looks again a minute later; either way it ends up waiting for the free slot.
    clock.advance(minutes=2)
    await dispatcher.drain()
    async with runtime.session_factory() as session:
        waiting = (
            await session.execute(select(Message).where(Message.status == "scheduled"))
        ).scalar_one()
    assert waiting.rule_id == "monthly"
    assert waiting.next_attempt_at == sent_at + timedelta(days=30)


async def test_holdout_is_planned_never_sent_and_variants_are_recorded(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    api: Api,
    tmp_path: Path,
) -> None:
    use_rules(
        runtime,
        tmp_path,
        "rules:\n  - id: split\n    when: {event: order.created}\n    holdout: 50%\n"
        "    variants: [{template: thank-you, name: plain}, {template: thank-you, name: warm}]\n",
    )
    rule = runtime.rules.current.rules[0]
    draws = {n: assign(rule, f"default:c-{n}") for n in range(40)}
    held = next(n for n, draw in draws.items() if draw.held_out)
    mailed = next(n for n, draw in draws.items() if not draw.held_out)
    for number in (held, mailed):
        await post_event(
            client, order_created(customer_id=f"c-{number}", email=f"c{number}@example.org")
        )
    assert (await dispatcher.drain()).outcomes == {"sent": 1}
    assert smtp_sink.received[0].recipients == [f"c{mailed}@example.org"]
    listed = (await client.get("/api/v1/messages", headers=api.headers)).json()["items"]
    found = {item["email"]: (item["status"], item["variant"]) for item in listed}
    assert found == {
        f"c{held}@example.org": ("held_out", draws[held].variant),
        f"c{mailed}@example.org": ("sent", draws[mailed].variant),
    }


async def test_a_removed_rule_holds_its_waiting_messages_at_once(
    client: AsyncClient, runtime: Runtime, api: Api, tmp_path: Path
) -> None:
    two = (
        "rules:\n  - id: keep\n    when: {event: order.created}\n    send: {after: 1w}\n"
        "    template: thank-you\n  - id: drop\n    when: {event: order.created}\n"
        "    send: {after: 1w}\n    template: thank-you\n"
    )
    use_rules(runtime, tmp_path, two)
    await post_event(client, order_created())
    (tmp_path / "rules.yaml").write_text(two.split("  - id: drop")[0])
    response = await client.post("/api/v1/rules/reload", headers=api.headers)
    assert response.status_code == 200
    messages = await by_rule(runtime)
    assert (messages["drop"].status, messages["drop"].status_reason) == (
        "paused",
        "rule_missing",
    )
    assert messages["keep"].status == "scheduled"
    assert await reconcile_missing_rules(runtime) == Reconciled()  # nothing left to do


async def test_a_broken_or_first_load_never_cancels(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    use_rules(
        runtime,
        tmp_path,
        "rules:\n  - id: keep\n    when: {event: order.created}\n    send: {after: 1w}\n"
        "    template: thank-you\n",
    )
    await post_event(client, order_created())
    (tmp_path / "rules.yaml").write_text("rules: [oops\n")
    assert not runtime.rules.reload()
    assert await reconcile_missing_rules(runtime) == Reconciled()
    assert (await by_rule(runtime))["keep"].status == "scheduled"
