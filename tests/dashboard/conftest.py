"""Seeded stats (real mail, opens, clicks and an order), and a signed-in dashboard client.

The tracking tests' fixtures (the marketing rule `links`, clients from chosen addresses)
are reused as the stats tests use them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import pytest
from httpx import AsyncClient

from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import TEST_API_KEY, Api, FrozenClock, Visitor
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import SmtpSink
from tests.stats.conftest import SPAN, fold
from tests.stats.test_stats_flow import APPLE_PROXY, place_order, send_order
from tests.tracking.conftest import client, settings  # noqa: F401
from tests.tracking.test_tracking_flow import fetch


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-d")
    yield worker
    await worker.sender.close()


async def seed(
    http: AsyncClient,
    visitor: Visitor,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    runtime: Runtime,
) -> None:
    """Two mails sent on Nov 20; Apple's proxy opens both; Anna opens, clicks and orders
    again the next day (a conversion of EUR 49.80); then the rollup job runs."""
    anna = await send_order(http, dispatcher, smtp_sink, order_id="5001")
    boris = await send_order(
        http, dispatcher, smtp_sink, order_id="5002", customer_id="c-2", email="b@example.org"
    )
    assert anna is not None and boris is not None
    apple = visitor(APPLE_PROXY)
    clock.advance(minutes=1)
    for sent in (anna, boris):
        assert (await fetch(apple, sent.pixel, agent="Mozilla/5.0")).status_code == 200
    clock.advance(minutes=30)
    assert (await fetch(http, anna.pixel)).status_code == 200
    assert (await fetch(http, anna.links[1])).status_code == 302
    await place_order(http, order_id="5003", at="2026-11-21T10:00:00Z")
    await fold(runtime)


async def sign_in(http: AsyncClient, key: str = TEST_API_KEY) -> None:
    response = await http.post("/dashboard/login", data={"api_key": key})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard"


_CSRF = re.compile(r'<input type="hidden" name="csrf" value="([^"]+)">')


async def csrf_token(http: AsyncClient, path: str = "/dashboard") -> str:
    """The CSRF token a signed-in page's forms carry."""
    response = await http.get(path)
    assert response.status_code == 200, response.text
    found = _CSRF.search(response.text)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


async def api_figures(http: AsyncClient, api: Api) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The overview and the per-rule rows of the seeded span, as the stats API gives them."""
    overview = await http.get("/api/v1/stats/overview", params=SPAN, headers=api.headers)
    rules = await http.get("/api/v1/stats/rules", params=SPAN, headers=api.headers)
    assert overview.status_code == rules.status_code == 200
    return overview.json(), rules.json()["rows"]


class ReadPage(HTMLParser):
    """The figures a reader sees: cards by field, table cells by (rule, variant) and field,
    and the charts' names."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: dict[str, str] = {}
        self.cells: dict[tuple[str, str], dict[str, str]] = {}
        self.charts: list[str] = []
        self._card: str | None = None
        self._row: tuple[str, str] | None = None
        self._cell: str | None = None
        self._value = False
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "div" and "card" in values.get("class", "").split():
            self._card = values["data-field"]
        elif tag == "span" and self._card and "value" in values.get("class", ""):
            self._value = True
        elif tag == "tr" and "data-rule" in values:
            self._row = (values["data-rule"], values["data-variant"])
            self.cells[self._row] = {}
        elif tag == "td" and self._row and "data-field" in values:
            self._cell = values["data-field"]
        elif tag == "figure" and "data-chart" in values:
            self.charts.append(values["data-chart"])

    def handle_data(self, data: str) -> None:
        if self._value or self._cell:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._value and self._card:
            shown = self.cards.get(self._card)
            text = "".join(self._text).strip()
            self.cards[self._card] = text if shown is None else f"{shown}, {text}"
            self._value, self._text = False, []
        elif tag == "div" and self._card and not self._value:
            self._card = None
        elif tag == "td" and self._cell and self._row:
            self.cells[self._row][self._cell] = "".join(self._text).strip()
            self._cell, self._text = None, []
        elif tag == "tr":
            self._row = None


def read_page(html: str) -> ReadPage:
    page = ReadPage()
    page.feed(html)
    return page
