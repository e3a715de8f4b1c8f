"""`/dashboard/queue`: due now, per day ahead, held per reason, per rule; behind the sign-in."""

from __future__ import annotations

import re
from pathlib import Path

from httpx import AsyncClient

from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.dashboard.conftest import sign_in
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules

RULES = """
rules:
  - id: now
    when: {event: order.created}
    send: {after: 0m}
    template: thank-you
  - id: ahead
    when: {event: order.created}
    send: {after: 3d}
    template: thank-you
  - id: far
    when: {event: order.created}
    send: {after: 40d}
    template: thank-you
  - id: gone
    when: {event: order.created}
    send: {after: 0m}
    template: thank-you
"""


def _cell(page: str, rule: str, field: str) -> str:
    row = re.search(rf'<tr data-rule="{rule}">(.*?)</tr>', page, re.S)
    assert row is not None, rule
    cell = re.search(rf'<td data-(?:field|day)="{field}">([^<]*)</td>', row.group(1))
    assert cell is not None, (rule, field)
    return cell.group(1)


def _card(page: str, field: str) -> str:
    card = re.search(rf'data-field="{field}">.*?<span class="value">([^<]*)</span>', page, re.S)
    assert card is not None, field
    return card.group(1)


async def _orders(client: AsyncClient, *ids: str) -> None:
    for number, order_id in enumerate(ids):
        body = order_created(
            order_id=order_id,
            customer_id=f"c-{order_id}",
            email=f"q{number}@example.org",
            created_at="2026-11-20T09:00:00Z",
            occurred_at="2026-11-20T09:00:00Z",
        )
        assert (await post_event(client, body)).status_code == 200


async def test_the_queue_per_rule_and_day(
    client: AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    dispatcher: Dispatcher,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RULES)
    await _orders(client, "9001", "9002")
    clock.advance(minutes=30)  # 10:30: the two due rules' mail waits 90 minutes
    await sign_in(client)

    page = (await client.get("/dashboard/queue")).text
    assert _card(page, "due") == "4" and _card(page, "oldest_due_age") == "1 h 30 min"
    assert _card(page, "scheduled") == "8" and _card(page, "paused") == "0"
    assert (_cell(page, "now", "due"), _cell(page, "gone", "due")) == ("2", "2")
    # 3 days after 09:00 Nov 20 is Nov 23; 40 days is beyond the 14 days shown.
    assert _cell(page, "ahead", "2026-11-23") == "2" and _cell(page, "ahead", "2026-11-22") == "0"
    assert (_cell(page, "far", "later"), _cell(page, "ahead", "later")) == ("2", "0")
    assert _cell(page, "", "due") == "4"  # the totals row

    # The rule `gone` is taken out: the worker sends `now` and pauses `gone`'s mail.
    use_rules(runtime, tmp_path, RULES.split("  - id: gone")[0])
    await dispatcher.run_once()
    page = (await client.get("/dashboard/queue")).text
    assert _card(page, "due") == "0" and _card(page, "oldest_due_age") == "—"
    assert _card(page, "paused") == "2"
    assert _cell(page, "gone", "paused") == "2"
    assert 'data-rule="now"' not in page  # all sent: nothing of it waits
    assert re.search(r'data-reason="rule_missing"><code>rule_missing</code> 2<', page)


async def test_the_queue_is_empty_and_says_so(client: AsyncClient) -> None:
    await sign_in(client)
    response = await client.get("/dashboard/queue")
    assert response.status_code == 200
    assert "Nothing waits" in response.text
    assert 'aria-current="page">Queue' in response.text


async def test_the_queue_needs_the_sign_in(client: AsyncClient) -> None:
    response = await client.get("/dashboard/queue")
    assert (response.status_code, response.headers["location"]) == (303, "/dashboard/login")
