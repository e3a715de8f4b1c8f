"""Bounces and complaints in the stats: per rule and variant, sync and async, on the
dashboard too."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from httpx import AsyncClient
from sqlalchemy import select

from app.models import Message
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from app.stats.rollup import fold_stats
from tests.conftest import Api
from tests.factories import order_created, post_event
from tests.feedback.test_webhooks import postmark_auth, postmark_bounce
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink

TWO_VARIANTS = """
rules:
  - id: thanks
    kind: transactional
    when: {event: order.created}
    variants:
      - {template: thank-you, weight: 50, name: plain}
      - {template: thank-you, weight: 50, name: warm}
"""
SPAN = {"from": "2026-11-01", "to": "2026-11-30"}


async def test_bounced_sync_and_async_and_complained_per_rule_and_variant(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, TWO_VARIANTS)
    gone = "weg@example.org"
    smtp_sink.rcpt_reply = lambda a: "550 5.1.1 no such user" if a == gone else None
    people = [gone, "hart@example.org", "spam@example.org", "voll@example.org"]
    for number, email in enumerate(people):
        await post_event(
            client, order_created(customer_id=f"98765432101234567{number}", email=email)
        )
    assert (await dispatcher.run_once()).outcomes == {"failed": 1, "sent": 3}

    async with runtime.session_factory() as session:
        messages = {
            m.recipient or gone: m for m in (await session.execute(select(Message))).scalars()
        }
    references = {
        str(item.message["X-Aftersale-Message"]): item.recipients[0] for item in smtp_sink.received
    }
    by_address = {address: ref for ref, address in references.items()}
    url = "/webhooks/mail/postmark"
    hard = postmark_bounce(by_address["hart@example.org"])
    hard["Email"], hard["ID"] = "hart@example.org", 101
    soft = postmark_bounce(by_address["voll@example.org"], bounce_type="SoftBounce")
    soft["Email"], soft["ID"] = "voll@example.org", 102
    complaint = postmark_bounce(by_address["spam@example.org"], bounce_type="SpamComplaint")
    complaint["Email"], complaint["ID"] = "spam@example.org", 103
    for body in (hard, soft, complaint):
        assert (await client.post(url, json=body, headers=postmark_auth())).status_code == 200

    report = await fold_stats(runtime, settle=timedelta(0))
    assert report.feedback == 3

    expected: dict[str | None, Counter[str]] = {}
    outcome = {
        gone: ["bounced", "failed"],
        "hart@example.org": ["bounced", "bounced_async", "sent"],
        "spam@example.org": ["complained", "sent"],
        "voll@example.org": ["soft_bounced", "sent"],
    }
    for address, message in messages.items():
        expected.setdefault(message.variant, Counter()).update(outcome[address])
    response = await client.get("/api/v1/stats/rules", params=SPAN, headers=api.headers)
    rows = {row["variant"]: row for row in response.json()["rows"]}
    names = ("sent", "failed", "bounced", "bounced_async", "soft_bounced", "complained")
    assert {variant: {name: row[name] for name in names} for variant, row in rows.items()} == {
        variant: {name: counts[name] for name in names} for variant, counts in expected.items()
    }
    overview = (await client.get("/api/v1/stats/overview", params=SPAN, headers=api.headers)).json()
    assert (overview["bounced"], overview["bounced_async"], overview["complained"]) == (2, 1, 1)
    assert overview["complaint_rate"] == round(1 / 3, 4)

    hart = messages["hart@example.org"].id
    one = (await client.get(f"/api/v1/stats/messages/{hart}", headers=api.headers)).json()
    assert (one["bounced"], one["bounced_async"], one["complained"]) == (True, True, False)
    # Folding again changes nothing.
    assert (await fold_stats(runtime, settle=timedelta(0))).feedback == 0
