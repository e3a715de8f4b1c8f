"""Undo of suppressions: `aftersale suppressions remove` and the API, each removal recorded.

The story a shop lives through: a run of hard bounces on one day (a broken SMTP setup, say)
suppressed real customers; the operator removes that day's hard bounces in bulk, and those
customers get their mail again through the dispatcher, while entries of other reasons or
days stay and keep stopping mail.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.cli import main
from app.config import Settings
from app.models import ConsentChange, Customer, Message, Suppression, SuppressionRemoval
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.factories import order_created, post_event
from tests.mail.test_preview import cli_env
from tests.smtp_sink import SmtpSink

URL = "/api/v1/suppressions"
BOUNCED = ["anna@example.org", "boris.petrov@example.org", "chen.wei@example.org"]


def order_at(customer_id: str, email: str, clock: FrozenClock, **values: Any) -> dict[str, Any]:
    stamp = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    return order_created(
        customer_id=customer_id, email=email, created_at=stamp, occurred_at=stamp, **values
    )


async def listed(runtime: Runtime) -> dict[str, str]:
    async with runtime.session_factory() as session:
        rows = await session.execute(select(Suppression.email, Suppression.reason))
        return {email: reason for email, reason in rows}


async def removals(runtime: Runtime) -> list[SuppressionRemoval]:
    async with runtime.session_factory() as session:
        rows = await session.execute(select(SuppressionRemoval).order_by(SuppressionRemoval.id))
        return list(rows.scalars())


async def latest_statuses(runtime: Runtime) -> dict[str, tuple[str, str | None]]:
    """Each customer's newest message: (status, reason), by address."""
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Customer.email, Message.status, Message.status_reason)
            .join(Customer, Customer.id == Message.customer_id)
            .order_by(Message.id)
        )
        return {email: (status, reason) for email, status, reason in rows}


async def cli(*argv: str) -> int:
    # The command runs its own event loop, as it does from a shell.
    return await asyncio.to_thread(main, list(argv))


async def test_bulk_removal_of_a_days_hard_bounces_lets_their_mail_through_again(
    client: AsyncClient,
    runtime: Runtime,
    settings: Settings,
    api: Api,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_env(monkeypatch, settings)
    # The dispatcher stamps a bounce with the database's time, so this story runs on the
    # wall clock: an address that really bounced two days ago, before the bad day.
    bad_day = datetime.now(UTC).replace(microsecond=0)
    clock.current = bad_day - timedelta(days=2)
    await client.post(
        URL, json={"email": "dora@example.org", "reason": "hard_bounce"}, headers=api.headers
    )
    # The bad day: three customers bounce.
    clock.current = bad_day
    smtp_sink.rcpt_reply = lambda address: (
        f"550 5.1.1 <{address}>: no such user" if address in BOUNCED else None
    )
    for number, email in enumerate(BOUNCED):
        await post_event(client, order_at(f"c-{number}", email, clock))
    assert (await dispatcher.run_once()).outcomes == {"failed": 3}
    # That day too, entries of other reasons.
    await client.post(
        URL, json={"email": "emil@example.org", "reason": "complaint"}, headers=api.headers
    )
    await client.post(URL, json={"email": "fritz@example.org"}, headers=api.headers)
    before = await listed(runtime)
    assert {email: before[email] for email in BOUNCED} == dict.fromkeys(BOUNCED, "hard_bounce")
    assert len(before) == 6

    # A dry run counts and changes nothing.
    since = (bad_day - timedelta(days=1)).isoformat()
    filters = ["--reason", "hard_bounce", "--since", since]
    assert await cli("suppressions", "remove", *filters, "--dry-run") == 0
    assert capsys.readouterr().out == "would remove 3 (hard_bounce 3)\n"
    assert await listed(runtime) == before and await removals(runtime) == []

    note = "SMTP relay misconfigured on 2026-11-22"
    assert await cli("suppressions", "remove", *filters, "--note", note) == 0
    out = capsys.readouterr().out
    assert out == "removed 3 (hard_bounce 3)\n"
    assert "@" not in out  # counts only
    assert await listed(runtime) == {
        "dora@example.org": "hard_bounce",
        "emil@example.org": "complaint",
        "fritz@example.org": "manual",
    }
    recorded = await removals(runtime)
    assert sorted(row.email for row in recorded) == sorted(BOUNCED)
    assert {(row.reason, row.source, row.note) for row in recorded} == {
        ("hard_bounce", "cli", note)
    }
    assert all(row.detail and row.detail.startswith("550") for row in recorded)
    assert all(abs(row.suppressed_at - bad_day) < timedelta(minutes=5) for row in recorded)

    # The same customers order again once the relay is fixed: their mail goes out now; the
    # entries outside the filter still stop theirs.
    smtp_sink.rcpt_reply = lambda _address: None
    clock.advance(hours=1)
    others = ["dora@example.org", "emil@example.org", "fritz@example.org"]
    for number, email in enumerate(BOUNCED + others):
        await post_event(client, order_at(f"c-{number}", email, clock))
    assert (await dispatcher.run_once()).outcomes == {"sent": 3}
    assert sorted(r for mail in smtp_sink.received for r in mail.recipients) == sorted(BOUNCED)
    statuses = await latest_statuses(runtime)
    assert {email: statuses[email] for email in others} == dict.fromkeys(
        others, ("skipped", "suppressed")
    )

    # The record is readable over the API too.
    page = (await client.get(f"{URL}/removals", headers=api.headers)).json()
    assert len(page["items"]) == 3 and page["next_cursor"] is None
    assert page["items"][0]["source"] == "cli" and page["items"][0]["note"] == note


async def test_cli_by_address_and_its_usage_errors(
    client: AsyncClient,
    runtime: Runtime,
    settings: Settings,
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_env(monkeypatch, settings)
    await client.post(URL, json={"email": "anna@example.org"}, headers=api.headers)
    assert await cli("suppressions", "remove", "Anna@Example.org", "--dry-run") == 0
    assert capsys.readouterr().out == "would remove 1 (manual 1)\n"
    assert await cli("suppressions", "remove", "Anna@Example.org", "nobody@example.org") == 0
    captured = capsys.readouterr()
    assert captured.out == "removed 1 (manual 1)\n"
    assert "1 address(es) not on the list" in captured.err
    assert await listed(runtime) == {}
    assert await cli("suppressions", "remove", "anna@example.org") == 1  # not on it now
    [row] = await removals(runtime)
    assert (row.email, row.reason, row.source) == ("anna@example.org", "manual", "cli")

    assert await cli("suppressions", "remove") == 2
    assert "--reason" in capsys.readouterr().err
    assert await cli("suppressions", "remove", "a@example.org", "--reason", "manual") == 2
    assert "not both" in capsys.readouterr().err
    assert await cli("suppressions", "remove", "--reason", "bounced") == 2
    assert "--reason 'bounced' is none of unsubscribe, unsubscribe_all" in capsys.readouterr().err
    bad_window = ["--since", "2026-11-22", "--until", "2026-11-21"]
    assert await cli("suppressions", "remove", *bad_window) == 2
    assert "--until must be later" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        await cli("suppressions", "remove", "--since", "last tuesday")
    assert "is not a date" in capsys.readouterr().err


async def test_api_bulk_removal(
    client: AsyncClient, runtime: Runtime, api: Api, clock: FrozenClock
) -> None:
    for email in ("a@example.org", "b@example.org"):
        await client.post(URL, json={"email": email, "reason": "hard_bounce"}, headers=api.headers)
    clock.advance(days=1)
    await client.post(
        URL, json={"email": "c@example.org", "reason": "hard_bounce"}, headers=api.headers
    )
    await client.post(
        URL, json={"email": "d@example.org", "reason": "complaint"}, headers=api.headers
    )
    body = {"reason": "hard_bounce", "since": "2026-11-20T00:00:00Z", "until": "2026-11-21T00:00Z"}

    unauthorised = await client.post(f"{URL}/remove", json=body)
    assert unauthorised.status_code == 401
    dry = await client.post(f"{URL}/remove", json={**body, "dry_run": True}, headers=api.headers)
    assert dry.status_code == 200
    assert dry.json() == {"dry_run": True, "removed": 2, "by_reason": {"hard_bounce": 2}}
    assert len(await listed(runtime)) == 4

    done = await client.post(
        f"{URL}/remove", json={**body, "note": "ticket 4411"}, headers=api.headers
    )
    assert done.json() == {"dry_run": False, "removed": 2, "by_reason": {"hard_bounce": 2}}
    assert await listed(runtime) == {"c@example.org": "hard_bounce", "d@example.org": "complaint"}
    assert {(r.email, r.source, r.note) for r in await removals(runtime)} == {
        ("a@example.org", "api", "ticket 4411"),
        ("b@example.org", "api", "ticket 4411"),
    }
    again = await client.post(f"{URL}/remove", json=body, headers=api.headers)
    assert again.json()["removed"] == 0


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "body", "give reason, since, or both"),
        ({"dry_run": True}, "body", "give reason, since, or both"),
        ({"since": "2026-11-20T00:00:00"}, "since", "timezone"),
        ({"reason": "bounced"}, "reason", "Input should be"),
        ({"since": "2026-11-21T00:00Z", "until": "2026-11-20T00:00Z"}, "body", "until must be"),
        ({"reason": "manual", "reasons": "x"}, "reasons", "Extra inputs"),
    ],
)
async def test_api_bulk_removal_refuses_bad_filters(
    client: AsyncClient, runtime: Runtime, api: Api, body: dict[str, Any], field: str, message: str
) -> None:
    await client.post(URL, json={"email": "a@example.org"}, headers=api.headers)
    response = await client.post(f"{URL}/remove", json=body, headers=api.headers)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"][-1] == field or (field == "body" and error["loc"] == ["body"])
    assert message in error["msg"]
    assert len(await listed(runtime)) == 1


async def test_delete_by_address_is_recorded_with_its_note(
    client: AsyncClient, runtime: Runtime, api: Api
) -> None:
    await client.post(
        URL,
        json={"email": "anna@example.org", "reason": "complaint", "detail": "ARF via Yahoo"},
        headers=api.headers,
    )
    response = await client.delete(
        f"{URL}/Anna@Example.org", params={"note": "she wrote to us"}, headers=api.headers
    )
    assert response.status_code == 204
    [row] = await removals(runtime)
    assert (row.email, row.reason, row.detail, row.source, row.note) == (
        "anna@example.org",
        "complaint",
        "ARF via Yahoo",
        "api",
        "she wrote to us",
    )
    missing = await client.delete(f"{URL}/anna@example.org", headers=api.headers)
    assert missing.status_code == 404
    assert len(await removals(runtime)) == 1


async def test_removing_an_old_unsubscribe_lets_order_mail_through_but_not_marketing(
    client: AsyncClient,
    runtime: Runtime,
    api: Api,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
) -> None:
    # Made by the unsubscribe link before it meant marketing only: it stops everything.
    async with runtime.session_factory() as session, session.begin():
        session.add(Suppression(email="anna@example.org", reason="unsubscribe", detail="one-click"))
    await post_event(client, order_created(order_id="820982911946154501", consent=True))
    assert (await latest_statuses(runtime))["anna@example.org"] == ("skipped", "suppressed")

    response = await client.delete(f"{URL}/anna@example.org", headers=api.headers)
    assert response.status_code == 204
    async with runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
        changes = (await session.execute(select(ConsentChange))).scalars().all()
    assert customer.marketing_consent is False and customer.marketing_opt_out_at is not None
    assert [(c.change, c.source, c.email) for c in changes] == [
        ("marketing_off", "list_removal", "anna@example.org")
    ]
    # A later order: the thank-you goes; the shop's "consents" flag does not resubscribe her.
    await post_event(
        client,
        order_created(
            order_id="820982911946154502", consent=True, occurred_at="2026-11-20T10:00:01Z"
        ),
    )
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert [mail.recipients for mail in smtp_sink.received] == [["anna@example.org"]]
    async with runtime.session_factory() as session:
        consent = (await session.execute(select(Customer.marketing_consent))).scalar_one()
    assert consent is False
