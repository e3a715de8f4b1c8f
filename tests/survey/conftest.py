"""Rules that send the shipped delivery follow-up (with `{{ survey.links }}`) at once, a
dispatcher that sends through the real SMTP sink, and helpers to answer as a mail client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select

from app.config import Settings
from app.models import SurveyAnswer
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from app.stats.rollup import fold_stats
from app.survey.tokens import make_survey_token, read_survey_token
from tests.conftest import Visitor
from tests.factories import order_created, post_event
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import SmtpSink

BROWSER = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
RULES = """
rules:
  - id: furniture-survey
    kind: transactional
    when: {event: order.created, items: {category: [kids]}}
    send: {after: 0m}
    template: delivery-follow-up
  - id: coffee-survey
    kind: transactional
    when: {event: order.created, items: {category: [coffee]}}
    send: {after: 0m}
    template: delivery-follow-up
"""
FURNITURE = [
    {"sku": "KF-WARDROBE", "name": "Kids' wardrobe", "category": "kids/furniture", "quantity": 1},
    {"sku": "KF-ANCHOR", "name": "Wall anchor kit", "category": "kids/accessories", "quantity": 2},
]
COFFEE = [
    {"sku": "COF-COL", "name": "Colombia beans", "category": "coffee/beans", "quantity": 1},
    {"sku": "DRIP-V60", "name": "Dripper", "category": "kitchen/coffee", "quantity": 1},
]
# These rules declare no `survey`: no loyalty figures (see test_loyalty_stats.py).
NO_DECLARED_SURVEY: dict[str, Any] = {
    "surveys": 0,
    "answered": 0,
    "response_rate": None,
    "positive": 0,
    "neutral": 0,
    "negative": 0,
    "silent": 0,
    "eli": None,
    "csat": None,
    "csat_responses": 0,
    "ces": None,
    "ces_responses": 0,
}


_SURVEY_URL = re.compile(r"https?://[^\s\"'<>]+/s/([A-Za-z0-9_-]+)/(\d+)")


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    rules = tmp_path / "survey-rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    return settings.model_copy(update={"rules_dir": rules})


@pytest.fixture
async def client(visitor: Visitor) -> AsyncClient:
    return visitor("198.51.100.23")


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-survey")
    yield worker
    await worker.sender.close()


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (href, text)
        self._href: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href, self._text = dict(attrs).get("href") or "", ""

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, self._text.strip()))
            self._href = None


@dataclass
class SurveyMail:
    html: str
    text: str
    html_links: list[tuple[str, str]]  # the survey links of the HTML part: (href, text)
    text_lines: list[str]  # the text part's lines that carry a survey link

    @property
    def urls(self) -> list[str]:
        return [href for href, _ in self.html_links]


async def send_order(
    client: AsyncClient,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    *,
    items: list[dict[str, Any]] = FURNITURE,
    locale: str = "en",
    customer_id: str = "c-1001",
    created_at: str = "2026-11-20T09:59:00Z",
) -> SurveyMail:
    """One order in, its mail sent through the SMTP sink, read as a mail client would."""
    body = order_created(items=items, locale=locale, customer_id=customer_id, created_at=created_at)
    response = await post_event(client, body)
    assert response.status_code == 200, response.text
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    mail = smtp_sink.received[-1]
    html, text = mail.part("text/html"), mail.part("text/plain")
    reader = _Links()
    reader.feed(html)
    survey = [(href, label) for href, label in reader.links if _SURVEY_URL.fullmatch(href)]
    lines = [line for line in text.splitlines() if _SURVEY_URL.search(line)]
    return SurveyMail(html=html, text=text, html_links=survey, text_lines=lines)


def path(url: str) -> str:
    return urlsplit(url).path


async def answer(
    client: AsyncClient, url: str, *, agent: str = BROWSER, method: str = "GET"
) -> Response:
    return await client.request(method, path(url), headers={"User-Agent": agent})


async def comment(client: AsyncClient, url: str, text: str) -> Response:
    """What the thank-you page's form sends: POST to `comment` beside the answer's URL."""
    target = path(url).rsplit("/", 1)[0] + "/comment"
    return await client.post(
        target,
        data={"comment": text},
        headers={"User-Agent": BROWSER, "Content-Type": "application/x-www-form-urlencoded"},
    )


async def stored_answers(runtime: Runtime) -> list[SurveyAnswer]:
    async with runtime.session_factory() as session:
        rows = await session.execute(select(SurveyAnswer).order_by(SurveyAnswer.id))
        return list(rows.scalars())


async def fold(runtime: Runtime) -> None:
    await fold_stats(runtime, settle=timedelta(0))


def token_for(runtime: Runtime, mail: SurveyMail, kind: str) -> str:
    """A `kind` survey link's token for the message `mail` is: the mail's own when its rule
    asks that kind (the dispatcher signs its rule's kind), else one made for it."""
    settings, now = runtime.settings, runtime.clock.now()
    token = path(mail.urls[0]).split("/")[2]
    claims = read_survey_token(
        token, secrets=settings.survey_secrets, now=now, max_age=timedelta(days=1)
    )
    assert claims is not None
    if claims.kind == kind:
        return token
    return make_survey_token(
        message_id=claims.message_id, issued_at=now, secrets=settings.survey_secrets, kind=kind
    )


def tamper(url: str) -> str:
    """`url` with one character of its token changed."""
    head, token, score = url.rsplit("/", 2)
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    return f"{head}/{flipped}/{score}"
