"""Stats end to end: mail received by a real SMTP server, opened and clicked through the app,
orders placed, the rollup job run, and the stats API read."""

from __future__ import annotations

import asyncio
import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select

from app.models import Conversion, TrackingEvent
from app.outbox.dispatcher import Dispatcher
from app.planner.assign import assign
from app.runtime import Runtime
from app.stats.rollup import fold_stats, purge_tracking_events
from tests.conftest import Api, FrozenClock
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink
from tests.stats.conftest import SPAN, fold, links_row, rules_stats
from tests.tracking.conftest import RULES, Visitor
from tests.tracking.test_tracking_flow import ReadMail, Sent, fetch, path

APPLE_PROXY = "17.58.63.201"


async def send_order(
    client: AsyncClient,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    *,
    order_id: str,
    customer_id: str = "c-1001",
    email: str = "anna@example.org",
    at: str = "2026-11-20T10:00:00Z",
) -> Sent | None:
    """Place an order; the mail it brings, as received, or None when it was not sent."""
    received = len(smtp_sink.received)
    response = await post_event(
        client,
        order_created(
            order_id=order_id, customer_id=customer_id, email=email, created_at=at, occurred_at=at
        ),
    )
    assert response.status_code == 200, response.text
    await dispatcher.run_once()
    if len(smtp_sink.received) == received:
        return None
    mail = smtp_sink.received[-1]
    html, text = mail.part("text/html"), mail.part("text/plain")
    reader = ReadMail()
    reader.feed(html)
    visible = [href for href, style in reader.links if "display:none" not in style]
    hidden = [href for href, style in reader.links if "display:none" in style]
    [pixel] = [src for src in reader.images if "/o/" in src]
    return Sent(
        html=html,
        text=text,
        raw=mail.raw,
        order_id=order_id,
        links=visible,
        honeypot=hidden[0],
        pixel=pixel,
    )


async def place_order(client: AsyncClient, *, order_id: str, at: str, **customer: str) -> None:
    """An order whose own mail is never sent (the dispatcher is not run)."""
    body = order_created(order_id=order_id, created_at=at, occurred_at=at, **customer)
    response = await post_event(client, body)
    assert response.status_code == 200, response.text


async def test_human_and_machine_opens_and_clicks(
    client: AsyncClient,
    visitor: Visitor,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    anna = await send_order(client, dispatcher, smtp_sink, order_id="5001")
    boris = await send_order(
        client, dispatcher, smtp_sink, order_id="5002", customer_id="c-2", email="b@example.org"
    )
    assert anna is not None and boris is not None
    apple = visitor(APPLE_PROXY)
    clock.advance(minutes=1)
    # Apple's proxy fetches both pixels on delivery; only Anna reads hers, twice, and clicks.
    for sent in (anna, boris):
        assert (await fetch(apple, sent.pixel, agent="Mozilla/5.0")).status_code == 200
    clock.advance(minutes=30)
    await fetch(client, anna.pixel)
    await fetch(client, anna.pixel)
    assert (await fetch(client, anna.links[0])).status_code == 302
    await fold(runtime)

    row = await links_row(client, api)
    assert {name: row[name] for name in ("planned", "sent", "opened", "opens")} == {
        "planned": 2,
        "sent": 2,
        "opened": 1,
        "opens": 2,
    }
    assert (row["opened_machine"], row["opens_machine"]) == (2, 2)
    assert (row["clicked"], row["clicks"], row["clicked_machine"]) == (1, 1, 0)
    assert (row["open_rate"], row["click_rate"]) == (0.5, 0.5)
    assert row["nps"] is None and row["revenue"] == {}
    assert row["template"] == "links"

    # The same figures per template, in the overview, and for the one message.
    templates = await client.get("/api/v1/stats/templates", params=SPAN, headers=api.headers)
    [by_template] = templates.json()["rows"]
    assert by_template == {"template": "links", **_figures(row)}
    overview = (await client.get("/api/v1/stats/overview", params=SPAN, headers=api.headers)).json()
    assert _figures(overview) == _figures(row)
    assert overview["rolled_up_at"] == "2026-11-20T10:31:00Z"
    # From the first day there is (there is no day before it to subtract): the same figures.
    since_year_one = {"from": "0001-01-01", "to": SPAN["to"]}
    everything = await client.get(
        "/api/v1/stats/overview", params=since_year_one, headers=api.headers
    )
    assert everything.status_code == 200
    assert _figures(everything.json()) == _figures(row)
    message = await client.get("/api/v1/stats/messages/1", headers=api.headers)
    assert message.json() | {"message_id": 1} == {
        "message_id": 1,
        "rule": "links",
        "variant": None,
        "template": "links",
        "day": "2026-11-20",
        "status": "sent",
        "bounced": False,
        "bounced_async": False,
        "soft_bounced": False,
        "complained": False,
        "opened": True,
        "opens": 2,
        "opens_machine": 1,
        "opens_unknown": 0,
        "clicked": True,
        "clicks": 1,
        "clicks_machine": 0,
        "clicks_unknown": 0,
        "unsubscribed": False,
        "conversions": 0,
    }


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("rule", "variant", "template", "from", "to", "rolled_up_at")
    return {name: value for name, value in row.items() if name not in keys}


async def test_a_repurchase_within_the_window_converts_with_its_revenue(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_order(client, dispatcher, smtp_sink, order_id="6001")
    assert sent is not None
    clock.advance(hours=2)
    await fetch(client, sent.links[1])
    # 4 days 22 hours after the click: inside the 5-day window.
    await place_order(client, order_id="6002", at="2026-11-25T10:00:00Z")
    await place_order(client, order_id="6002", at="2026-11-25T10:00:00Z")  # a repeat
    await fold(runtime)
    row = await links_row(client, api)
    assert (row["converted"], row["conversions"], row["revenue"]) == (1, 1, {"EUR": "49.80"})
    assert row["conversion_rate"] == 1.0
    assert row["lift"] is None  # no holdout group
    async with runtime.session_factory() as session:
        [conversion] = (await session.execute(select(Conversion))).scalars()
    assert (conversion.via, conversion.revenue, conversion.currency) == (
        "click",
        Decimal("49.80"),
        "EUR",
    )


async def test_an_order_after_the_window_does_not_convert(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_order(client, dispatcher, smtp_sink, order_id="6101")
    assert sent is not None
    clock.advance(hours=2)
    await fetch(client, sent.links[1])
    await place_order(client, order_id="6102", at="2026-11-25T12:00:01Z")  # 5 days + 1 s
    # Nor does an order of someone else, nor an open (opens do not count by default).
    await fetch(client, sent.pixel)
    await place_order(
        client, order_id="6103", at="2026-11-21T10:00:00Z", customer_id="c-9", email="z@x.org"
    )
    await fold(runtime)
    row = await links_row(client, api)
    assert (row["converted"], row["conversions"], row["revenue"]) == (0, 0, {})
    assert row["conversion_rate"] == 0.0


async def test_opens_convert_when_configured(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"attribution_via": "click_or_open"})
    sent = await send_order(client, dispatcher, smtp_sink, order_id="6201")
    assert sent is not None
    clock.advance(hours=1)
    await fetch(client, sent.pixel)
    await place_order(client, order_id="6202", at="2026-11-21T09:00:00Z")
    await fold(runtime)
    row = await links_row(client, api)
    assert (row["converted"], row["revenue"]) == (1, {"EUR": "49.80"})
    async with runtime.session_factory() as session:
        assert (await session.execute(select(Conversion.via))).scalar_one() == "open"


async def test_holdout_conversions_give_the_lift(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RULES % "\n    holdout: 50%")
    rule = runtime.rules.current.by_id("links")
    assert rule is not None
    candidates = [f"c-{number}" for number in range(1, 200)]
    held = [c for c in candidates if assign(rule, f"default:{c}").held_out][:2]
    mailed = [c for c in candidates if not assign(rule, f"default:{c}").held_out][:2]
    for index, customer in enumerate(held + mailed):
        await send_order(
            client,
            dispatcher,
            smtp_sink,
            order_id=f"70{index}",
            customer_id=customer,
            email=f"{customer}@example.org",
        )
    assert len(smtp_sink.received) == 2  # the held-out customers get nothing
    # Both mailed customers click and order again; one of the two held-out customers orders.
    clock.advance(hours=1)
    for mail in smtp_sink.received:
        html = mail.part("text/html")
        reader = ReadMail()
        reader.feed(html)
        link = next(href for href, style in reader.links if "/c/" in href and not style)
        assert (await fetch(client, link)).status_code == 302
    for index, customer in enumerate([*mailed, held[0]]):
        await place_order(
            client,
            order_id=f"71{index}",
            at="2026-11-22T10:00:00Z",
            customer_id=customer,
            email=f"{customer}@example.org",
        )
    await fold(runtime)
    # The day of the first orders' messages (the second orders planned messages of their own).
    row = await links_row(client, api, **{"from": "2026-11-20", "to": "2026-11-20"})
    assert (row["sent"], row["converted"], row["conversion_rate"]) == (2, 2, 1.0)
    assert (row["held_out"], row["held_out_converted"], row["held_out_conversions"]) == (2, 1, 1)
    assert row["holdout_conversion_rate"] == 0.5
    assert row["lift"] == 1.0  # 1.0 / 0.5 - 1
    assert row["revenue"] == {"EUR": "99.60"}  # the control group's orders are not revenue
    async with runtime.session_factory() as session:
        vias = sorted((await session.execute(select(Conversion.via))).scalars())
    assert vias == ["click", "click", "holdout"]


async def test_unsubscribes_and_bounces(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_order(client, dispatcher, smtp_sink, order_id="8001")
    assert sent is not None
    clock.advance(hours=1)
    unsubscribe = sent.links[4]
    assert "/u/" in unsubscribe
    response = await client.post(path(unsubscribe), content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 200
    smtp_sink.rcpt_reply = lambda _address: "550 5.1.1 No such user"
    bounced = await send_order(
        client, dispatcher, smtp_sink, order_id="8002", customer_id="c-3", email="gone@x.org"
    )
    assert bounced is None
    await fold(runtime)
    row = await links_row(client, api)
    assert (row["unsubscribed"], row["unsubscribe_rate"]) == (1, 1.0)
    assert (row["failed"], row["bounced"], row["sent"], row["planned"]) == (1, 1, 1, 2)


async def test_csv_says_what_json_says(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_order(client, dispatcher, smtp_sink, order_id="9001")
    assert sent is not None
    clock.advance(hours=1)
    await fetch(client, sent.pixel)
    await fetch(client, sent.links[0])
    await place_order(client, order_id="9002", at="2026-11-21T10:00:00Z")
    await fold(runtime)
    for url, rows_of in (
        ("/api/v1/stats/overview", lambda body: [body]),
        ("/api/v1/stats/rules", lambda body: body["rows"]),
        ("/api/v1/stats/templates", lambda body: body["rows"]),
        ("/api/v1/stats/rules/links/timeseries", lambda body: body["rows"]),
    ):
        as_json = await client.get(url, params=SPAN, headers=api.headers)
        as_csv = await client.get(url, params={**SPAN, "format": "csv"}, headers=api.headers)
        assert as_csv.status_code == 200, as_csv.text
        assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
        rows = rows_of(as_json.json())
        currencies = {currency for row in rows for currency in row["revenue"]}
        expected = [_flat(row, currencies) for row in rows]
        assert [_typed(row) for row in csv.DictReader(io.StringIO(as_csv.text))] == expected
        assert any(row.get("revenue_EUR") == "49.80" for row in expected), url


def _flat(row: dict[str, Any], currencies: set[str]) -> dict[str, Any]:
    """A JSON row as CSV has it: one revenue column for each currency of any row."""
    flat = dict(row)
    revenue = flat.pop("revenue")
    flat.update({f"revenue_{currency}": revenue.get(currency) for currency in currencies})
    return flat


def _typed(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row's cells as the JSON values they stand for."""
    typed: dict[str, Any] = {}
    for name, cell in row.items():
        if cell == "":
            typed[name] = None
        elif name.startswith("revenue_") or not _is_number(cell):
            typed[name] = cell
        else:
            typed[name] = float(cell) if "." in cell else int(cell)
    return typed


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False  # names, dates, times
    return True


async def test_the_api_needs_a_key(client: AsyncClient, api: Api) -> None:
    for url in (
        "/api/v1/stats/overview",
        "/api/v1/stats/rules",
        "/api/v1/stats/templates",
        "/api/v1/stats/rules/links/timeseries",
        "/api/v1/stats/messages/1",
    ):
        assert (await client.get(url)).status_code == 401, url
        wrong = {"Authorization": "Bearer not-the-key"}
        assert (await client.get(url, headers=wrong)).status_code == 401, url
    assert (await client.get("/api/v1/stats/rules", headers=api.headers)).status_code == 200


async def test_bad_spans_and_unknown_rules(client: AsyncClient, api: Api) -> None:
    backwards = {"from": "2026-11-30", "to": "2026-11-01"}
    response = await client.get("/api/v1/stats/rules", params=backwards, headers=api.headers)
    assert response.status_code == 422
    response = await client.get("/api/v1/stats/rules", params={"from": "x"}, headers=api.headers)
    assert response.status_code == 422
    unknown = await client.get("/api/v1/stats/rules/nope/timeseries", headers=api.headers)
    assert unknown.status_code == 404
    # A loaded rule with nothing counted yet: zeros, one row per day of the default 30 days.
    empty = await client.get("/api/v1/stats/rules/links/timeseries", headers=api.headers)
    rows = empty.json()["rows"]
    assert len(rows) == 30 and rows[-1]["end"] == "2026-11-20"
    assert {row["planned"] for row in rows} == {0}
    too_long = {"from": "2020-01-01", "to": "2026-11-30"}
    response = await client.get(
        "/api/v1/stats/rules/links/timeseries", params=too_long, headers=api.headers
    )
    assert response.status_code == 422


async def test_timeseries_by_day_and_by_week(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    # Friday, Saturday and the next Tuesday; the mail goes out each day.
    for index, day in enumerate(("2026-11-20", "2026-11-21", "2026-11-24")):
        clock.current = clock.current.replace(day=int(day[-2:]))
        sent = await send_order(
            client, dispatcher, smtp_sink, order_id=f"95{index}", at=f"{day}T10:00:00Z"
        )
        assert sent is not None
        clock.advance(minutes=30)
        await fetch(client, sent.pixel)
        clock.advance(minutes=-30)
    await fold(runtime)
    span = {"from": "2026-11-19", "to": "2026-11-24"}
    url = "/api/v1/stats/rules/links/timeseries"
    days = (await client.get(url, params=span, headers=api.headers)).json()
    assert days["bucket"] == "day"
    assert [(row["start"], row["sent"], row["opened"]) for row in days["rows"]] == [
        ("2026-11-19", 0, 0),
        ("2026-11-20", 1, 1),
        ("2026-11-21", 1, 1),
        ("2026-11-22", 0, 0),
        ("2026-11-23", 0, 0),
        ("2026-11-24", 1, 1),
    ]
    weeks = await client.get(url, params={**span, "bucket": "week"}, headers=api.headers)
    assert [(row["start"], row["end"], row["sent"]) for row in weeks.json()["rows"]] == [
        ("2026-11-19", "2026-11-22", 2),  # the week of Monday the 16th, from the 19th on
        ("2026-11-23", "2026-11-24", 1),
    ]
    # A span's figures are the sum of its buckets; a span without messages has no rows.
    row = (await rules_stats(client, api, **span))[("links", None)]
    assert row["sent"] == 3 and row["open_rate"] == 1.0
    assert await rules_stats(client, api, **{"from": "2026-11-25", "to": "2026-11-30"}) == {}


async def test_a_message_moves_from_its_due_day_to_its_send_day(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    await place_order(client, order_id="9401", at="2026-11-21T23:59:00Z")
    await fold(runtime)
    span = {"from": "2026-11-21", "to": "2026-11-22"}
    url = "/api/v1/stats/rules/links/timeseries"
    waiting = (await client.get(url, params=span, headers=api.headers)).json()["rows"]
    assert [(row["planned"], row["scheduled"], row["sent"]) for row in waiting] == [
        (1, 1, 0),
        (0, 0, 0),
    ]
    clock.current = clock.current.replace(day=22, hour=0, minute=10)  # sent after midnight
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    await fold(runtime)
    sent = (await client.get(url, params=span, headers=api.headers)).json()["rows"]
    assert [(row["planned"], row["scheduled"], row["sent"]) for row in sent] == [
        (0, 0, 0),
        (1, 0, 1),
    ]


async def test_the_job_is_idempotent_and_safe_to_run_together(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_order(client, dispatcher, smtp_sink, order_id="9601")
    assert sent is not None
    clock.advance(hours=1)
    await fetch(client, sent.pixel)
    await fetch(client, sent.links[0])
    await place_order(client, order_id="9602", at="2026-11-21T10:00:00Z")
    await asyncio.gather(fold(runtime), fold(runtime))
    first = await rules_stats(client, api)
    report = await fold(runtime)
    assert (report.events, report.conversions) == (0, 0)
    assert await rules_stats(client, api) == first
    row = first[("links", None)]
    assert (row["planned"], row["opened"], row["clicked"], row["converted"]) == (2, 1, 1, 1)


async def test_events_wait_until_they_settle(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_order(client, dispatcher, smtp_sink, order_id="9701")
    assert sent is not None
    clock.advance(hours=1)
    await fetch(client, sent.pixel)
    # A transaction that took a lower id may still be open: the newest ids wait a minute.
    assert (await fold_stats(runtime)).events == 0
    clock.advance(seconds=30)
    assert (await fold_stats(runtime)).events == 0
    clock.advance(seconds=31)
    assert (await fold_stats(runtime)).events == 1
    assert (await links_row(client, api))["opened"] == 1


async def test_old_raw_events_are_purged_and_the_stats_stay(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_order(client, dispatcher, smtp_sink, order_id="9801")
    assert sent is not None
    clock.advance(hours=1)
    await fetch(client, sent.pixel)
    await fetch(client, sent.links[0])
    clock.advance(days=30)
    await fetch(client, sent.links[1])  # a later click, not old enough to go
    await fold(runtime)
    before = await rules_stats(client, api)
    clock.advance(days=runtime.settings.tracking_retention_days - 29)
    assert await purge_tracking_events(runtime) == 2
    async with runtime.session_factory() as session:
        left = (await session.execute(select(func.count()).select_from(TrackingEvent))).scalar()
    assert left == 1
    await fold(runtime)
    assert await rules_stats(client, api) == before
    assert before[("links", None)]["clicks"] == 2


async def test_unfolded_events_are_not_purged(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_order(client, dispatcher, smtp_sink, order_id="9901")
    assert sent is not None
    clock.advance(hours=1)
    await fetch(client, sent.pixel)
    clock.advance(days=runtime.settings.tracking_retention_days + 1)
    assert await purge_tracking_events(runtime) == 0  # not counted yet
    await fold(runtime)
    assert await purge_tracking_events(runtime) == 1


async def test_the_openapi_schema_documents_the_stats_api(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for documented in (
        "/api/v1/stats/overview",
        "/api/v1/stats/rules",
        "/api/v1/stats/templates",
        "/api/v1/stats/rules/{rule}/timeseries",
        "/api/v1/stats/messages/{message_id}",
    ):
        assert documented in paths, documented
    rules = paths["/api/v1/stats/rules"]["get"]
    assert [p["name"] for p in rules["parameters"]] == ["from", "to", "format"]
    assert rules["security"] == [{"HTTPBearer": []}]
    content = rules["responses"]["200"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/RulesStats"}
    assert content["text/csv"]["example"].startswith("rule,variant,template,planned,")
    components = schema["components"]["schemas"]
    for name in ("Overview", "RulesStats", "Timeseries", "MessageStats"):
        assert components[name]["examples"], name
    assert "opened / sent" in components["RuleRow"]["properties"]["open_rate"]["description"]
