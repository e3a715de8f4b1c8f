"""Rule edits never destroy the queue: a missing rule's messages are held, come back with
it, move with `renamed_from`, and are cancelled only after RULE_GRACE."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from httpx import AsyncClient
from sqlalchemy import insert, select

from app.jobs.missing_rules import Reconciled, reconcile_missing_rules
from app.models import Message
from app.outbox.dispatcher import Dispatcher
from app.rules.loader import parse_rule_files
from app.rules.source import RulesSource
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink

RESTOCK = """
defaults: {kind: transactional}
rules:
  - id: restock
    when: {event: order.created, items: {category: [baby/diapers]}}
    send: {after: 1w}
    template: thank-you
"""
RENAMED = RESTOCK.replace("id: restock", "id: restock-diapers\n    renamed_from: [restock]")
FIRST_DUE = datetime(2026, 11, 27, 9, 59, tzinfo=UTC)
SECOND_DUE = datetime(2026, 12, 4, 9, 59, tzinfo=UTC)


def diapers(order_id: str, created_at: str) -> dict:
    return order_created(
        order_id=order_id,
        created_at=created_at,
        items=[{"sku": f"SKU-{order_id}", "name": "Windeln", "category": "baby/diapers"}],
    )


async def two_orders(client: AsyncClient, runtime: Runtime, folder: Path) -> None:
    """Two waiting restock messages: one due on 27 November, one on 4 December."""
    use_rules(runtime, folder, RESTOCK)
    await post_event(client, diapers("820982911946154508", "2026-11-20T09:59:00Z"))
    await post_event(client, diapers("820982911946154509", "2026-11-27T09:59:00Z"))


async def rows(runtime: Runtime) -> list[tuple[str, str, str | None, datetime, str]]:
    async with runtime.session_factory() as session:
        found = await session.execute(
            select(
                Message.rule_id,
                Message.status,
                Message.status_reason,
                Message.next_attempt_at,
                Message.dedupe_key,
            ).order_by(Message.id)
        )
        return [tuple(row) for row in found]  # type: ignore[misc]


async def states(runtime: Runtime) -> list[tuple[str, str, str | None]]:
    return [(rule, status, reason) for rule, status, reason, *_ in await rows(runtime)]


async def test_a_deleted_rule_file_holds_its_messages_until_it_comes_back(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    await two_orders(client, runtime, tmp_path)
    planned = await rows(runtime)
    assert [row[3] for row in planned] == [FIRST_DUE, SECOND_DUE]

    # A checkout of another branch: the file is gone for a while.
    (tmp_path / "rules.yaml").unlink()
    assert runtime.rules.reload()
    assert await reconcile_missing_rules(runtime) == Reconciled(paused=2)
    assert await states(runtime) == [("restock", "paused", "rule_missing")] * 2
    listed = (await client.get("/api/v1/rules", headers=api.headers)).json()
    assert listed["rules"] == [] and listed["missing"] == {"restock": 2}
    ready = (await client.get("/readyz")).json()
    assert ready["checks"]["rules"]["waiting_for_missing_rules"] == 2

    # Past the first one's time: nothing is claimed while it is held.
    clock.current = FIRST_DUE + timedelta(days=1)
    assert (await dispatcher.run_once()).claimed == 0
    assert smtp_sink.received == []

    # Back: both scheduled at their own time; the first, overdue and not expired, goes now.
    (tmp_path / "rules.yaml").write_text(RESTOCK)
    assert runtime.rules.reload()
    assert await reconcile_missing_rules(runtime) == Reconciled(resumed=2)
    assert [(row[1], row[2], row[3]) for row in await rows(runtime)] == [
        ("scheduled", None, FIRST_DUE),
        ("scheduled", None, SECOND_DUE),
    ]
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    clock.current = SECOND_DUE - timedelta(minutes=1)
    assert (await dispatcher.run_once()).claimed == 0
    clock.current = SECOND_DUE
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert len(smtp_sink.received) == 2
    assert await states(runtime) == [("restock", "sent", None)] * 2
    listed = (await client.get("/api/v1/rules", headers=api.headers)).json()
    assert listed["missing"] == {}
    ready = (await client.get("/readyz")).json()
    assert ready["checks"]["rules"]["waiting_for_missing_rules"] == 0


async def test_a_message_the_dispatcher_held_goes_out_when_its_rule_returns(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    await two_orders(client, runtime, tmp_path)
    # Reloaded in this process, the job not run yet: the dispatcher meets it first.
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    assert runtime.rules.reload()
    clock.current = FIRST_DUE
    assert (await dispatcher.run_once()).outcomes == {"paused": 1}
    (tmp_path / "rules.yaml").write_text(RESTOCK)
    response = await client.post("/api/v1/rules/reload", headers=api.headers)
    assert response.status_code == 200 and response.json()["missing"] == {}
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert len(smtp_sink.received) == 1
    async with runtime.session_factory() as session:
        attempts = (await session.execute(select(Message.attempts).order_by(Message.id))).all()
    assert [row[0] for row in attempts] == [1, 0]  # holding it used no attempt


async def test_past_the_grace_held_messages_are_cancelled(
    client: AsyncClient, runtime: Runtime, clock: FrozenClock, tmp_path: Path
) -> None:
    assert runtime.settings.rule_grace == timedelta(days=7)
    await two_orders(client, runtime, tmp_path)
    (tmp_path / "rules.yaml").unlink()
    assert runtime.rules.reload()
    assert await reconcile_missing_rules(runtime) == Reconciled(paused=2)
    # The grace counts from when they were held.
    clock.advance(days=7, seconds=-1)
    assert await reconcile_missing_rules(runtime) == Reconciled()
    clock.advance(seconds=1)
    assert await reconcile_missing_rules(runtime) == Reconciled(cancelled=2)
    assert await states(runtime) == [("restock", "cancelled", "rule_removed")] * 2
    # Too late now: the rule's return does not bring them back.
    (tmp_path / "rules.yaml").write_text(RESTOCK)
    assert runtime.rules.reload()
    assert await reconcile_missing_rules(runtime) == Reconciled()
    assert await states(runtime) == [("restock", "cancelled", "rule_removed")] * 2


async def test_a_renamed_rule_takes_over_the_old_ids_messages(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    await two_orders(client, runtime, tmp_path)
    # Renamed in two steps, as a marketer might: first the id alone (held), then the
    # renamed_from that claims the old messages.
    (tmp_path / "rules.yaml").write_text(RESTOCK.replace("id: restock", "id: restock-diapers"))
    assert runtime.rules.reload()
    assert await reconcile_missing_rules(runtime) == Reconciled(paused=2)
    (tmp_path / "rules.yaml").write_text(RENAMED)
    assert runtime.rules.reload()
    assert await reconcile_missing_rules(runtime) == Reconciled(moved=2)
    moved = await rows(runtime)
    assert [(rule, status, reason) for rule, status, reason, *_ in moved] == [
        ("restock-diapers", "scheduled", None)
    ] * 2
    assert [row[3] for row in moved] == [FIRST_DUE, SECOND_DUE]
    # The keys follow, so the new rule never plans the same message again under its own.
    assert all(row[4].startswith("restock-diapers:order:") for row in moved)
    clock.current = SECOND_DUE
    assert (await dispatcher.run_once()).outcomes == {"sent": 2}
    assert len(smtp_sink.received) == 2


async def test_a_takeover_never_makes_a_second_copy(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    await two_orders(client, runtime, tmp_path)
    # The new id already holds the first order's message (planned by it meanwhile).
    async with runtime.session_factory() as session, session.begin():
        first = (await session.execute(select(Message).order_by(Message.id))).scalars().first()
        assert first is not None
        copy = {
            column.key: getattr(first, column.key)
            for column in Message.__table__.columns
            if column.key != "id"
        }
        copy.update(
            rule_id="restock-diapers",
            dedupe_key=first.dedupe_key.replace("restock:", "restock-diapers:", 1),
        )
        await session.execute(insert(Message).values(**copy))
    (tmp_path / "rules.yaml").write_text(RENAMED)
    assert runtime.rules.reload()
    assert await reconcile_missing_rules(runtime) == Reconciled(moved=1, duplicates=1)
    assert await states(runtime) == [
        ("restock", "cancelled", "rule_renamed"),
        ("restock-diapers", "scheduled", None),
        ("restock-diapers", "scheduled", None),
    ]


async def test_a_broken_or_missing_rules_folder_changes_nothing(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    folder = tmp_path / "rules-here"
    folder.mkdir()
    await two_orders(client, runtime, folder)
    assert await reconcile_missing_rules(runtime) == Reconciled()
    (folder / "rules.yaml").write_text("rules:\n  - id: [broken\n")
    assert not runtime.rules.reload()  # the last good set stays
    assert await reconcile_missing_rules(runtime) == Reconciled()
    shutil.rmtree(folder)
    assert not runtime.rules.reload()
    assert await reconcile_missing_rules(runtime) == Reconciled()
    # A process that starts with no folder has no rules to judge by: it holds nothing.
    runtime.rules = RulesSource(folder)
    assert not runtime.rules.reload()
    assert await reconcile_missing_rules(runtime) == Reconciled()
    assert await states(runtime) == [("restock", "scheduled", None)] * 2


def test_renamed_from_naming_a_live_rule_is_an_error_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "rules:\n"
        "  - id: restock\n"
        "    when: {event: order.created}\n"
        "    template: thank-you\n"
        "  - id: restock-v2\n"
        "    renamed_from: [old, restock]\n"
        "    when: {event: order.created}\n"
        "    template: thank-you\n"
        "  - id: restock-v3\n"
        "    renamed_from: [old]\n"
        "    when: {event: order.created}\n"
        "    template: thank-you\n"
    )
    errors = [str(error) for error in parse_rule_files(tmp_path).errors]
    assert len(errors) == 2
    assert errors[0].endswith(
        "a.yaml:6:25: renamed_from 'restock': a rule has this id now (a.yaml); remove it "
        "from renamed_from, or rename that rule"
    )
    assert errors[1].endswith(
        "a.yaml:10:20: renamed_from 'old': rule 'restock-v2' takes it over already"
    )
