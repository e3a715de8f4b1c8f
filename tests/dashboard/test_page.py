"""The dashboard page through the app: the stats API's numbers, charts, no script."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from httpx import AsyncClient

from app.dashboard import figures
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock, Visitor
from tests.dashboard.conftest import api_figures, read_page, seed, sign_in
from tests.smtp_sink import SmtpSink
from tests.stats.conftest import SPAN

_URL = re.compile(r"https?://[^\s\"'<>)]+", re.IGNORECASE)


async def test_the_page_shows_the_numbers_the_api_gives(
    client: AsyncClient,
    visitor: Visitor,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    await seed(client, visitor, dispatcher, smtp_sink, clock, runtime)
    overview, rows = await api_figures(client, api)
    [row] = rows
    # What the seed made, so the comparison below is of real figures, not of zeros.
    assert (row["sent"], row["opened"], row["opened_machine"], row["clicked"]) == (2, 1, 2, 1)
    assert (row["converted"], row["revenue"], row["nps"]) == (1, {"EUR": "49.80"}, None)

    await sign_in(client)
    response = await client.get("/dashboard", params=SPAN)
    assert response.status_code == 200, response.text
    page = read_page(response.text)

    assert page.cells[(row["rule"], row["variant"] or "")] == {
        "sent": figures.count(row["sent"]),
        "opened": figures.count(row["opened"]),
        "opened_machine": figures.count(row["opened_machine"]),
        "clicked": figures.count(row["clicked"]),
        "clicked_machine": figures.count(row["clicked_machine"]),
        "converted": figures.count(row["converted"]),
        "conversion_rate": figures.rate(row["conversion_rate"]),
        "revenue": ", ".join(figures.money(row["revenue"])),
        "unsubscribed": figures.count(row["unsubscribed"]),
        "bounced": figures.count(row["bounced"]),
        "complained": figures.count(row["complained"]),
        "nps": "—",
    }
    assert page.cells[("links", "")]["conversion_rate"] == "50.0 %"
    assert page.cells[("links", "")]["revenue"] == "EUR 49.80"
    not_sent = sum(overview[s] for s in ("skipped", "expired", "cancelled", "failed"))
    assert page.cards == {
        "not_sent": figures.count(not_sent),
        "sent": figures.count(overview["sent"]),
        "opened": figures.count(overview["opened"]),
        "clicked": figures.count(overview["clicked"]),
        "converted": figures.count(overview["converted"]),
        "revenue": "EUR 49.80",
        "unsubscribed": figures.count(overview["unsubscribed"]),
        "bounced": figures.count(overview["bounced"]),
        "complained": figures.count(overview["complained"]),
        "nps": "—",
        "opened_machine": figures.count(overview["opened_machine"]),
        "clicked_machine": figures.count(overview["clicked_machine"]),
    }
    assert page.charts == ["activity", "revenue-EUR", "machines"]
    for legend in ("Sent", "Opened", "Clicked", "Converted", "EUR", "Opened by machines"):
        assert f">{legend}</text>" in response.text, legend


async def test_the_page_runs_no_script_and_names_no_other_host(
    client: AsyncClient,
    visitor: Visitor,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    await seed(client, visitor, dispatcher, smtp_sink, clock, runtime)
    await sign_in(client)
    for params in (SPAN, {**SPAN, "bucket": "week", "rule": "links"}, {}):
        response = await client.get("/dashboard", params=params)
        assert response.status_code == 200
        html = response.text.lower()
        assert "<script" not in html and "javascript:" not in html
        assert not re.search(r"\son[a-z]+\s*=", _tags(html))  # no onload= and the like
        foreign = [url for url in _URL.findall(html) if urlsplit(url).hostname != "test"]
        assert foreign == []
        headers = response.headers
        assert "script-src 'none'" in headers["content-security-policy"]
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"


def _tags(html: str) -> str:
    """The tags' insides, where an event handler attribute (` onload=`) would be."""
    return " ".join(re.findall(r"<[a-z][^>]*>", html))


async def test_one_rules_charts_and_weeks(
    client: AsyncClient,
    visitor: Visitor,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    await seed(client, visitor, dispatcher, smtp_sink, clock, runtime)
    await sign_in(client)
    response = await client.get("/dashboard", params={**SPAN, "bucket": "week", "rule": "links"})
    assert response.status_code == 200
    assert "Over time: links, per week" in response.text
    assert '<option value="links" selected>' in response.text
    assert '<option value="week" selected>' in response.text
    # Nov 2026 in ISO weeks: Sun 1, then four Monday-to-Sunday weeks, then Mon 30.
    assert ">wk Nov 16</text>" in response.text


async def test_empty_stats_show_an_empty_state(client: AsyncClient) -> None:
    await sign_in(client)
    response = await client.get("/dashboard")
    assert response.status_code == 200
    assert "No mail in this span" in response.text
    assert "The rollup job has not run yet." in response.text
    assert "<svg" not in response.text and "<table" not in response.text
    # The default span: the 30 days up to today (the test clock's Nov 20).
    assert 'name="from" value="2026-10-22"' in response.text
    assert 'name="to" value="2026-11-20"' in response.text


async def test_bad_spans_and_rules_are_explained(client: AsyncClient) -> None:
    await sign_in(client)
    after = await client.get("/dashboard", params={"from": "2026-11-30", "to": "2026-11-01"})
    assert after.status_code == 422
    assert "“From” is after “to”." in after.text
    too_long = await client.get("/dashboard", params={"from": "2020-01-01", "to": "2026-11-01"})
    assert too_long.status_code == 422
    assert "More than 1000 days" in too_long.text
    assert (
        await client.get("/dashboard", params={"from": "2020-01-01", "bucket": "week"})
    ).status_code == 200
    unknown = await client.get("/dashboard", params={"rule": "<b>nope</b>"})
    assert unknown.status_code == 404
    assert "No rule named “&lt;b&gt;nope&lt;/b&gt;”." in unknown.text
    for params in ({"from": "2026-13-01"}, {"bucket": "month"}):
        response = await client.get("/dashboard", params=params)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][0] == "query"
