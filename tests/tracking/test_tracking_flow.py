"""Tracked mail end to end: sent through a real SMTP server, read as a mail client would."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import distinct, func, select

from app.models import Message, TrackedLink, TrackingEvent
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from app.tracking.tokens import TokenUse, make_token, new_nonce
from tests.conftest import FrozenClock
from tests.factories import order_created, post_event
from tests.outbox.conftest import make_dispatcher, use_rules
from tests.smtp_sink import SmtpSink
from tests.tracking.conftest import RULES, Visitor

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Safari/605.1.15"
)
REVIEW = "https://shop.example/review?order={order}&utm_source=mail"


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-t")
    yield worker
    await worker.sender.close()


class ReadMail(HTMLParser):
    """What a mail client finds in the HTML: links (with their style) and images."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "a":
            self.links.append((values.get("href", ""), values.get("style", "")))
        elif tag == "img":
            self.images.append(values.get("src", ""))


@dataclass
class Sent:
    html: str
    text: str
    raw: bytes
    order_id: str
    links: list[str]  # visible links, in order
    honeypot: str
    pixel: str


async def send_one(
    client: AsyncClient, dispatcher: Dispatcher, smtp_sink: SmtpSink, order_id: str = "5001"
) -> Sent:
    response = await post_event(client, order_created(order_id=order_id))
    assert response.status_code == 200, response.text
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    mail = smtp_sink.received[-1]
    html, text = mail.part("text/html"), mail.part("text/plain")
    reader = ReadMail()
    reader.feed(html)
    hidden = [href for href, style in reader.links if "display:none" in style]
    visible = [href for href, style in reader.links if "display:none" not in style]
    pixels = [src for src in reader.images if "/o/" in src]
    return Sent(
        html=html,
        text=text,
        raw=mail.raw,
        order_id=order_id,
        links=visible,
        honeypot=hidden[0] if hidden else "",
        pixel=pixels[0] if pixels else "",
    )


def path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def fetch(
    client: AsyncClient, url: str, *, agent: str = BROWSER, method: str = "GET"
) -> Response:
    return await client.request(method, path(url), headers={"User-Agent": agent})


async def events(runtime: Runtime) -> list[tuple[str, str, str]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(TrackingEvent.kind, TrackingEvent.class_, TrackingEvent.reason).order_by(
                TrackingEvent.id
            )
        )
        return [(row[0], row[1], row[2]) for row in rows]


async def test_a_reader_opens_and_clicks(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_one(client, dispatcher, smtp_sink)
    base = runtime.settings.public_url
    # Every http(s) link points at /c/, and no original URL is left in either part...
    tracked = [link.startswith(f"{base}/c/") for link in sent.links]
    assert tracked == [True, True, True, False, False]
    assert "https://shop.example" not in sent.html
    assert "https://shop.example" not in sent.text
    assert sent.text.count(f"{base}/c/") == 2
    # ...but mailto: and the unsubscribe link, in the body and the header, stay as they were.
    assert sent.links[3] == "mailto:help@shop.example"
    unsubscribe = sent.links[4]
    assert unsubscribe.startswith(f"{base}/u/")
    assert f"Unsubscribe: {unsubscribe}" in sent.text
    assert f"List-Unsubscribe: <{unsubscribe}>".encode() in sent.raw
    assert sent.pixel.startswith(f"{base}/o/") and sent.honeypot.startswith(f"{base}/c/")

    clock.advance(minutes=20)  # the reader gets to it later
    opened = await fetch(client, sent.pixel)
    assert opened.status_code == 200
    assert opened.headers["content-type"] == "image/gif"
    assert opened.headers["cache-control"].startswith("no-store")
    assert opened.content == base64.b64decode(
        "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
    )
    clicked = await fetch(client, sent.links[0])
    assert clicked.status_code == 302
    assert clicked.headers["location"] == REVIEW.format(order=sent.order_id)
    assert clicked.headers["referrer-policy"] == "no-referrer"
    assert clicked.headers["cache-control"].startswith("no-store")
    # The text part's link to the same page is its own link, and goes to the same place.
    text_link = next(word for word in sent.text.split() if "/c/" in word)
    assert (await fetch(client, text_link)).headers["location"] == REVIEW.format(
        order=sent.order_id
    )
    assert await events(runtime) == [
        ("open", "human", "browser"),
        ("click", "human", "browser"),
        ("click", "human", "browser"),
    ]
    async with runtime.session_factory() as session:
        [stored] = (await session.execute(select(TrackingEvent).limit(1))).scalars()
    assert (stored.ip, stored.user_agent, stored.method) == ("198.51.100.0/24", BROWSER, "GET")


async def test_unique_and_total_counts_derive_from_the_events(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_one(client, dispatcher, smtp_sink)
    clock.advance(hours=1)
    for _ in range(3):
        await fetch(client, sent.pixel)
    await fetch(client, sent.links[0])
    clock.advance(hours=1)
    await fetch(client, sent.links[0])
    clock.advance(hours=1)
    await fetch(client, sent.links[1])
    async with runtime.session_factory() as session:
        message_id = (await session.execute(select(Message.id))).scalar_one()

        async def count(kind: str, *, unique: bool) -> int:
            # What stats will ask: every human event, or the different links clicked.
            counted = func.count(distinct(TrackingEvent.link_id)) if unique else func.count()
            statement = select(counted).where(
                TrackingEvent.message_id == message_id,
                TrackingEvent.kind == kind,
                TrackingEvent.class_ == "human",
            )
            return int((await session.execute(statement)).scalar_one())

        assert await count("open", unique=False) == 3
        assert await count("click", unique=False) == 3
        assert await count("click", unique=True) == 2  # two different links


async def test_apple_privacy_proxy_opens_are_machine(
    client: AsyncClient,
    visitor: Visitor,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_one(client, dispatcher, smtp_sink)
    clock.advance(minutes=5)
    apple = visitor("17.58.63.201")
    assert (await fetch(apple, sent.pixel, agent="Mozilla/5.0")).status_code == 200
    # The same bare agent from an address outside the configured ranges: not sure.
    assert (await fetch(client, sent.pixel, agent="Mozilla/5.0")).status_code == 200
    assert await events(runtime) == [
        ("open", "machine", "apple_proxy"),
        ("open", "unknown", "apple_agent_elsewhere"),
    ]


async def test_open_right_after_delivery_is_a_prefetch(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_one(client, dispatcher, smtp_sink)
    clock.advance(seconds=2)
    await fetch(client, sent.pixel)
    assert await events(runtime) == [("open", "machine", "prefetch")]


async def test_a_scanner_clicking_every_link_within_seconds_is_machine(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_one(client, dispatcher, smtp_sink)
    clock.advance(minutes=3)
    for link in sent.links[:3]:
        response = await fetch(client, link)
        assert response.status_code == 302  # a scanner still gets where the link goes
        clock.advance(seconds=0.6)
    assert await events(runtime) == [("click", "machine", "click_burst")] * 3


async def test_parallel_scanner_clicks_see_each_other(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_one(client, dispatcher, smtp_sink)
    clock.advance(minutes=3)
    responses = await asyncio.gather(*(fetch(client, link) for link in sent.links[:3]))
    assert [response.status_code for response in responses] == [302] * 3
    assert await events(runtime) == [("click", "machine", "click_burst")] * 3


async def test_head_requests_and_the_honeypot_are_machine(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_one(client, dispatcher, smtp_sink)
    clock.advance(minutes=3)
    head = await fetch(client, sent.links[1], method="HEAD")
    assert head.status_code == 302
    clock.advance(minutes=3)
    honeypot = await fetch(client, sent.honeypot)
    assert honeypot.status_code == 204 and "location" not in honeypot.headers
    assert await events(runtime) == [
        ("click", "machine", "head_request"),
        ("click", "machine", "honeypot"),
    ]


async def test_no_parameter_chooses_the_target(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_one(client, dispatcher, smtp_sink)
    clock.advance(minutes=3)
    for query in ("url=https://evil.example", "to=https://evil.example&next=//evil.example"):
        response = await fetch(client, f"{sent.links[1]}?{query}")
        assert response.headers["location"] == "https://shop.example/care"


async def test_bad_tokens_are_404_and_redirect_nowhere(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_one(client, dispatcher, smtp_sink)
    base = runtime.settings.public_url
    settings = runtime.settings
    link_token = sent.links[0].rsplit("/", 1)[1]
    pixel_token = sent.pixel.rsplit("/", 1)[1]
    tampered = link_token[:30] + ("A" if link_token[30] != "A" else "B") + link_token[31:]
    async with runtime.session_factory() as session:
        link_id = (
            await session.execute(select(TrackedLink.id).where(TrackedLink.position == 0))
        ).scalar_one()

    def signed(link: int, use: TokenUse = TokenUse.CLICK) -> str:
        return make_token(
            use=use,
            link_id=link,
            nonce=new_nonce(),
            issued_at=clock.now(),
            secrets=settings.tracking_secrets,
        )

    foreign = make_token(
        use=TokenUse.CLICK,
        link_id=link_id,
        nonce=new_nonce(),
        issued_at=clock.now(),
        secrets=["someone-elses-key-0123456789"],
    )
    clock.advance(minutes=3)
    bad_clicks = [
        tampered,
        signed(999_999),  # well signed, names no link
        signed(link_id),  # a real link, but not its nonce
        foreign,
        pixel_token,  # a pixel token is no click token
        "nonsense",
    ]
    for token in bad_clicks:
        response = await fetch(client, f"{base}/c/{token}?url=https://evil.example")
        assert response.status_code == 404, token
        assert "location" not in response.headers
        assert response.text == "Not found\n"
    for token in (link_token, "nonsense"):  # a click token is no pixel token
        response = await fetch(client, f"{base}/o/{token}")
        assert response.status_code == 404
        assert response.headers["content-type"] == "image/gif"
    assert await events(runtime) == []


async def test_links_expire(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    sent = await send_one(client, dispatcher, smtp_sink)
    clock.advance(days=runtime.settings.tracking_link_days - 1)
    assert (await fetch(client, sent.links[0])).status_code == 302
    clock.advance(days=2)
    assert (await fetch(client, sent.links[0])).status_code == 404
    assert (await fetch(client, sent.pixel)).status_code == 404
    assert len(await events(runtime)) == 1


async def test_a_rule_with_track_false_sends_untouched_links(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RULES % "\n    track: false")
    sent = await send_one(client, dispatcher, smtp_sink)
    assert sent.links[:3] == [
        REVIEW.format(order=sent.order_id),
        "https://shop.example/care",
        "https://shop.example/faq",
    ]
    assert sent.pixel == "" and sent.honeypot == ""
    base = runtime.settings.public_url
    assert f"{base}/o/" not in sent.html and f"{base}/c/" not in sent.html + sent.text
    async with runtime.session_factory() as session:
        assert (await session.execute(select(func.count()).select_from(TrackedLink))).scalar() == 0


async def test_tracking_can_be_turned_off_for_all_mail(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"tracking_enabled": False})
    sent = await send_one(client, dispatcher, smtp_sink)
    assert sent.links[1] == "https://shop.example/care"
    assert sent.pixel == "" and sent.honeypot == ""
