"""Unsubscribe means marketing only: opaque signed tokens, the RFC 8058 and mailto: headers,
the /u pages (unsubscribe, undo, stop all email), and what the dispatcher then sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select

from app.customers.service import erase_customer
from app.db import transaction
from app.feedback.model import MAIL, Feedback
from app.feedback.service import apply_feedback
from app.intake.aftersale import DEFAULT_SHOP
from app.mail.compose import compose_message, message_bytes
from app.mail.templates import RenderedEmail
from app.mail.unsubscribe import (
    AddressToken,
    CustomerToken,
    make_token,
    read_token,
    unsubscribe_from_mail,
    unsubscribe_url,
)
from app.models import (
    ConsentChange,
    Customer,
    FeedbackKind,
    MailFeedbackEvent,
    Message,
    Suppression,
    SuppressionRemoval,
)
from app.outbox.dispatcher import Dispatcher
from app.privacy import email_digest
from app.runtime import Runtime
from app.unsubscribe.service import unsubscribe_by_mail
from tests.conftest import FrozenClock
from tests.factories import order_created, post_event
from tests.outbox.conftest import make_dispatcher, use_rules
from tests.smtp_sink import SmtpSink
from tests.test_privacy import database_text

KEY = "unsubscribe-key-0123456789"
OLD_KEY = "unsubscribe-old-key-0123456789"
# A link as mail sent before tokens became opaque carries it (format 1: base64 of a MAC and
# the JSON ["default", "anna@example.org"]), signed with the development secret the tests run
# with. Made by the code of that time, not by these tests.
OLD_FORMAT_TOKEN = (
    "Ab_fC-F6IABM3KWJ1Mrz_4dvFYe6UCm7ZkW-ItgmDNd9WyJkZWZhdWx0IiwiYW5uYUBleGFtcGxlLm9yZyJd"
)
BOTH_KINDS = """
rules:
  - id: thank-you
    kind: transactional
    when: {event: order.created}
    template: thank-you
  - id: next-coffee
    kind: marketing
    when: {event: order.created}
    send: {after: %s}
    template: coffee-next-variety
"""
MARKETING = """
rules:
  - id: next-coffee
    kind: marketing
    when: {event: order.created}
    send: {after: %s}
    template: coffee-next-variety
"""


# --- tokens: pure functions ---------------------------------------------------------------


def test_token_is_opaque_and_names_the_customer() -> None:
    token = make_token(customer_id=820982911946154508, secrets=[KEY])
    assert len(token) == 40 and set(token) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert read_token(token, secrets=[KEY]) == CustomerToken(820982911946154508)
    assert token == make_token(customer_id=820982911946154508, secrets=[KEY])
    assert token != make_token(customer_id=820982911946154509, secrets=[KEY])


def test_token_needs_the_secret() -> None:
    token = make_token(customer_id=7, secrets=[KEY])
    assert read_token(token, secrets=["another-key-0123456789"]) is None
    assert read_token(token, secrets=[]) is None
    with pytest.raises(ValueError, match="secret"):
        make_token(customer_id=7, secrets=[])


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().lower()


def test_every_tampered_bit_is_refused() -> None:
    raw = base64.b32decode(make_token(customer_id=7, secrets=[KEY]).upper())
    for index in range(len(raw)):
        for bit in range(8):
            changed = bytearray(raw)
            changed[index] ^= 1 << bit
            assert read_token(_b32(bytes(changed)), secrets=[KEY]) is None, (index, bit)


@pytest.mark.parametrize(
    "token",
    ["", "a", "!!!!", "abc=", "a" * 39, "a" * 41, "A" * 40, "a" * 4096, _b32(b"\x02" * 25)],
)
def test_garbage_is_refused(token: str) -> None:
    assert read_token(token, secrets=[KEY]) is None


def test_the_url_takes_only_the_lower_case_spelling() -> None:
    token = make_token(customer_id=7, secrets=[KEY])
    assert read_token(token.upper(), secrets=[KEY]) is None
    assert read_token(token + "=", secrets=[KEY]) is None


def test_key_rotation() -> None:
    old_link = make_token(customer_id=7, secrets=[OLD_KEY])
    rotated = [KEY, OLD_KEY]
    assert read_token(old_link, secrets=rotated) == CustomerToken(7)
    assert make_token(customer_id=7, secrets=rotated) == make_token(customer_id=7, secrets=[KEY])
    assert read_token(old_link, secrets=[KEY]) is None


def legacy_token(shop: str, email: str, secret: str) -> str:
    """A token of the old format (1), built as the code of that time built it."""
    body = json.dumps([shop, email.lower()], ensure_ascii=False, separators=(",", ":")).encode()
    mac = hmac.new(secret.encode(), b"aftersale-unsubscribe\x00\x01" + body, hashlib.sha256)
    return base64.urlsafe_b64encode(b"\x01" + mac.digest() + body).rstrip(b"=").decode()


def test_links_of_the_old_format_still_work() -> None:
    assert legacy_token("default", "anna@example.org", "dev-unsubscribe-secret") == OLD_FORMAT_TOKEN
    found = read_token(OLD_FORMAT_TOKEN, secrets=["dev-unsubscribe-secret"])
    assert found == AddressToken(shop="default", email="anna@example.org")
    assert read_token(OLD_FORMAT_TOKEN, secrets=[KEY]) is None
    forged = OLD_FORMAT_TOKEN[:-8] + "Wd4eSJd"  # another address under the same MAC
    assert read_token(forged, secrets=["dev-unsubscribe-secret"]) is None


def test_url_is_public_url_slash_u_slash_token() -> None:
    url = unsubscribe_url(public_url="https://mail.shop.example/", customer_id=7, secrets=[KEY])
    assert url == f"https://mail.shop.example/u/{make_token(customer_id=7, secrets=[KEY])}"


def test_unsubscribe_from_mail_reads_the_local_part() -> None:
    token = make_token(customer_id=42, secrets=[KEY])
    assert unsubscribe_from_mail(f"unsubscribe+{token}", secrets=[KEY]) == CustomerToken(42)
    # Some mail servers change the case of local parts.
    assert unsubscribe_from_mail(f"UNSUBSCRIBE+{token.upper()}", secrets=[KEY]) == CustomerToken(42)
    for local in (token, f"bounces+{token}", f"unsubscribe+{token[:-1]}x", "unsubscribe+"):
        assert unsubscribe_from_mail(local, secrets=[KEY]) is None, local
    assert unsubscribe_from_mail(f"unsubscribe+{token}", secrets=[OLD_KEY]) is None
    # Only the opaque format has a mailto: form.
    assert unsubscribe_from_mail(f"unsubscribe+{OLD_FORMAT_TOKEN}", secrets=[KEY]) is None


# --- composition ----------------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 10, tzinfo=UTC)


def compose(**overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "rendered": RenderedEmail(subject="Hi", text="Hello\n", html="<p>Hello</p>"),
        "from_name": "Shop",
        "from_address": "shop@example.com",
        "to_name": None,
        "to_address": "anna@example.org",
        "message_id_domain": "example.com",
        "now": NOW,
    }
    arguments.update(overrides)
    msg, _ = compose_message(**arguments)
    return message_bytes(msg)


def test_long_unsubscribe_url_stays_one_plain_header_line() -> None:
    # Python would fold a line this long into RFC 2047 encoded-words, which providers ignore.
    url = "https://mail.shop.example/u/" + "A" * 300
    raw = compose(unsubscribe_url=url)
    assert f"\r\nList-Unsubscribe: <{url}>\r\n".encode() in raw
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0].split(b"List-Unsubscribe")[1]


def test_no_unsubscribe_url_no_headers() -> None:
    assert b"List-Unsubscribe" not in compose()


@pytest.mark.parametrize(
    "url",
    [
        "https://x.example/u/a>, <mailto:evil@example.org",
        "https://x.example/u/a\r\nBcc: evil@example.org",
        "https://x.example/u/a b",
        "javascript:alert(1)",
        "https://x.example/u/é",
    ],
)
def test_unsafe_unsubscribe_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsubscribe URL"):
        compose(unsubscribe_url=url)


def test_mailto_follows_the_url_in_list_unsubscribe() -> None:
    url = "https://mail.shop.example/u/" + "a" * 40
    mailto = "mailto:unsubscribe+" + "b" * 40 + "@mail.shop.example"
    raw = compose(unsubscribe_url=url, unsubscribe_mailto=mailto)
    assert f"\r\nList-Unsubscribe: <{url}>, <{mailto}>\r\n".encode() in raw
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw


@pytest.mark.parametrize(
    "mailto",
    [
        "mailto:a@example.org?subject=x",
        "mailto:a@example.org>, <https://evil.example/",
        "mailto:a@example.org\r\nBcc: evil@example.org",
        "https://x.example/",
    ],
)
def test_unsafe_mailtos_are_refused(mailto: str) -> None:
    with pytest.raises(ValueError, match="mailto"):
        compose(unsubscribe_url="https://x.example/u/a", unsubscribe_mailto=mailto)


def test_extra_headers_cannot_set_list_unsubscribe() -> None:
    for name in ("List-Unsubscribe", "list-unsubscribe-post"):
        with pytest.raises(ValueError, match="not allowed"):
            compose(extra_headers={name: "<https://evil.example/>"})


# --- through the pages, the dispatcher and the SMTP sink -------------------------------------


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-u")
    yield worker
    await worker.sender.close()


async def customer_id_of(runtime: Runtime, email: str) -> int:
    async with runtime.session_factory() as session:
        return (
            await session.execute(select(Customer.id).where(Customer.email == email.lower()))
        ).scalar_one()


async def link_for(runtime: Runtime, email: str) -> str:
    settings = runtime.settings
    return unsubscribe_url(
        public_url=settings.public_url,
        customer_id=await customer_id_of(runtime, email),
        secrets=settings.unsubscribe_secrets,
    )


def path_of(url: str) -> str:
    return url[url.index("/u/") :]


async def one_click(client: AsyncClient, path: str, method: str = "POST") -> Response:
    """What a mail provider's unsubscribe button sends (RFC 8058)."""
    return await client.request(
        method,
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


async def page_form(
    client: AsyncClient, runtime: Runtime, path: str, action: str, **headers: str
) -> Response:
    """A form of the page, sent by a browser from the page itself."""
    return await client.post(
        path,
        content=f"action={action}".encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": runtime.settings.public_url,
            "Sec-Fetch-Site": "same-origin",
            **headers,
        },
    )


async def suppressions(runtime: Runtime) -> list[tuple[str, str, str | None]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Suppression.email, Suppression.reason, Suppression.detail)
        )
        return [(row[0], row[1], row[2]) for row in rows]


async def consent(runtime: Runtime, email: str = "anna@example.org") -> bool:
    async with runtime.session_factory() as session:
        return bool(
            (
                await session.execute(
                    select(Customer.marketing_consent).where(Customer.email == email)
                )
            ).scalar_one()
        )


async def changes(runtime: Runtime) -> list[tuple[str, str, str | None, datetime]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(select(ConsentChange).order_by(ConsentChange.id))
        return [(c.change, c.source, c.email, c.at) for c in rows.scalars()]


async def statuses(runtime: Runtime) -> list[tuple[str, str, str | None]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Message.rule_id, Message.status, Message.status_reason).order_by(Message.id)
        )
        return [(rule, status, reason) for rule, status, reason in rows]


def order_at(clock: FrozenClock, order_id: str, **values: Any) -> dict[str, Any]:
    stamp = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    return order_created(order_id=order_id, created_at=stamp, occurred_at=stamp, **values)


async def test_marketing_mail_carries_opaque_one_click_and_mailto_links(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"inbound_domain": "mail.shop.example"})
    use_rules(runtime, tmp_path, MARKETING % "0m")
    await post_event(client, order_created(email="Anna@Example.org"))
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    [mail] = smtp_sink.received
    url = await link_for(runtime, "anna@example.org")
    token = url.rsplit("/", 1)[1]
    mailto = f"mailto:unsubscribe+{token}@mail.shop.example"
    message = mail.message
    assert message.get_all("List-Unsubscribe") == [f"<{url}>, <{mailto}>"]
    assert message.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    assert f"\r\nList-Unsubscribe: <{url}>, <{mailto}>\r\n".encode() in mail.raw
    # The same link in the footer, for readers whose mail client shows no button.
    assert f'href="{url}"' in mail.part("text/html")
    assert f"Unsubscribe: {url}" in mail.part("text/plain")
    # The token tells nothing about the address: not as text, not in any base64.
    address = b"anna@example.org"
    encodings = {
        base64.b64encode(address),
        base64.urlsafe_b64encode(address),
        base64.b32encode(address),
        base64.b64encode(json.dumps([DEFAULT_SHOP, "anna@example.org"]).encode()),
    }
    header = str(message["List-Unsubscribe"])
    for hidden in {address, *encodings}:
        text = hidden.decode().rstrip("=")
        assert text.lower() not in header.lower(), text
    customer_id = await customer_id_of(runtime, "anna@example.org")
    assert read_token(token, secrets=runtime.settings.unsubscribe_secrets) == CustomerToken(
        customer_id
    )


async def test_no_mailto_without_an_inbound_domain(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, MARKETING % "0m")
    await post_event(client, order_created())
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    [mail] = smtp_sink.received
    [value] = mail.message.get_all("List-Unsubscribe")
    assert "mailto:" not in value and value.startswith("<http")


async def test_transactional_mail_has_no_unsubscribe(
    client: AsyncClient, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    await post_event(client, order_created())  # the thank-you rule: transactional
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    [mail] = smtp_sink.received
    assert "List-Unsubscribe" not in mail.message
    assert "List-Unsubscribe-Post" not in mail.message
    assert b"/u/" not in mail.raw


async def test_one_click_stops_marketing_and_order_mail_still_goes(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, BOTH_KINDS % "1d")
    await post_event(client, order_at(clock, "820982911946154601"))
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}  # the thank-you
    path = path_of(await link_for(runtime, "anna@example.org"))

    response = await one_click(client, path)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "You are unsubscribed" in response.text and "anna@example.org" in response.text
    assert 'value="resubscribe"' in response.text and 'value="stop_all"' in response.text
    assert await consent(runtime) is False
    assert await suppressions(runtime) == []
    assert await changes(runtime) == [
        ("marketing_off", "one-click", "anna@example.org", clock.now())
    ]
    assert (await one_click(client, path)).status_code == 200
    assert len(await changes(runtime)) == 1  # a repeat records nothing new

    # The next day a new order, whose webhook still says the customer consents: its
    # thank-you goes; the offers of both orders are skipped.
    clock.advance(days=1, minutes=1)
    await post_event(client, order_at(clock, "820982911946154602", consent=True))
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert [mail.message["Subject"] for mail in smtp_sink.received] == [
        "Thank you for your order #820982911946154601 at Aftersale Shop",
        "Thank you for your order #820982911946154602 at Aftersale Shop",
    ]
    assert await statuses(runtime) == [
        ("thank-you", "sent", None),
        ("next-coffee", "skipped", "no_consent"),
        ("thank-you", "sent", None),
        ("next-coffee", "skipped", "no_consent"),
    ]
    assert await consent(runtime) is False


async def test_undo_restores_marketing(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, MARKETING % "1d")
    await post_event(client, order_at(clock, "820982911946154611"))
    path = path_of(await link_for(runtime, "anna@example.org"))
    assert (await one_click(client, path)).status_code == 200
    clock.advance(minutes=5)
    undone = await page_form(client, runtime, path, "resubscribe")
    assert undone.status_code == 200 and "You are subscribed again" in undone.text
    assert 'value="unsubscribe"' in undone.text
    assert await consent(runtime) is True
    assert [(c, s) for c, s, _, _ in await changes(runtime)] == [
        ("marketing_off", "one-click"),
        ("marketing_on", "page"),
    ]
    clock.advance(days=1)
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert len(smtp_sink.received) == 1


async def test_stop_all_blocks_both_kinds_until_undone(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, BOTH_KINDS % "1d")
    await post_event(client, order_at(clock, "820982911946154621"))
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    path = path_of(await link_for(runtime, "anna@example.org"))
    assert (await one_click(client, path)).status_code == 200
    stopped = await page_form(client, runtime, path, "stop_all")
    assert stopped.status_code == 200 and "No more emails" in stopped.text
    assert await suppressions(runtime) == [("anna@example.org", "unsubscribe_all", "page")]
    # Coming back to the link shows the state, with its undo.
    again = await client.get(path)
    assert "No more emails" in again.text and 'value="undo_stop_all"' in again.text

    clock.advance(days=1, minutes=1)
    await post_event(client, order_at(clock, "820982911946154622"))
    assert (await dispatcher.run_once()).claimed == 0
    # The new order's thank-you is stopped with its offer; the first offer too.
    assert await statuses(runtime) == [
        ("thank-you", "sent", None),
        ("next-coffee", "skipped", "no_consent"),
        ("thank-you", "skipped", "suppressed"),
        ("next-coffee", "skipped", "suppressed"),
    ]
    assert len(smtp_sink.received) == 1

    undone = await page_form(client, runtime, path, "undo_stop_all")
    assert undone.status_code == 200 and "You are unsubscribed" in undone.text
    assert await suppressions(runtime) == []
    async with runtime.session_factory() as session:
        [removal] = (await session.execute(select(SuppressionRemoval))).scalars().all()
    assert (removal.reason, removal.source) == ("unsubscribe_all", "page")
    assert [(c, s) for c, s, _, _ in await changes(runtime)] == [
        ("marketing_off", "one-click"),
        ("all_off", "page"),
        ("all_on", "page"),
    ]
    # Order mail again; marketing still off, as before "stop all".
    clock.advance(minutes=1)
    await post_event(client, order_at(clock, "820982911946154623"))
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert str(smtp_sink.received[-1].message["Subject"]).endswith(
        "#820982911946154623 at Aftersale Shop"
    )


async def test_the_page_cannot_lift_a_bounce(client: AsyncClient, runtime: Runtime) -> None:
    await post_event(client, order_created())
    path = path_of(await link_for(runtime, "anna@example.org"))
    async with runtime.session_factory() as session, session.begin():
        session.add(Suppression(email="anna@example.org", reason="hard_bounce"))
    assert (await page_form(client, runtime, path, "undo_stop_all")).status_code == 200
    assert (await page_form(client, runtime, path, "stop_all")).status_code == 200
    assert await suppressions(runtime) == [("anna@example.org", "hard_bounce", None)]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_forms_from_another_site_are_refused(
    client: AsyncClient, runtime: Runtime, headers: dict[str, str]
) -> None:
    await post_event(client, order_created())
    path = path_of(await link_for(runtime, "anna@example.org"))
    for action in ("stop_all", "resubscribe", "undo_stop_all"):
        response = await page_form(client, runtime, path, action, **headers)
        assert response.status_code == 403, action
        assert "Not allowed" in response.text
    assert await suppressions(runtime) == [] and await changes(runtime) == []
    # Unsubscribing is honoured from anywhere: a mail provider or webmail may post it.
    response = await page_form(client, runtime, path, "unsubscribe", **headers)
    assert response.status_code == 200
    assert await consent(runtime) is False


async def test_page_form_and_empty_post_unsubscribe(client: AsyncClient, runtime: Runtime) -> None:
    await post_event(client, order_created())
    path = path_of(await link_for(runtime, "anna@example.org"))
    response = await client.post(
        path, content=b"confirm=page", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200  # the form of pages served before the change
    assert await consent(runtime) is False
    assert [(c, s) for c, s, _, _ in await changes(runtime)] == [("marketing_off", "page")]
    assert (await client.post(path)).status_code == 200  # no body at all is fine too


async def test_a_link_of_the_old_format_unsubscribes_from_marketing(
    client: AsyncClient, runtime: Runtime
) -> None:
    await post_event(client, order_created(email="anna@example.org"))
    page = await client.get(f"/u/{OLD_FORMAT_TOKEN}")
    assert page.status_code == 200 and "anna@example.org" in page.text
    assert (await one_click(client, f"/u/{OLD_FORMAT_TOKEN}")).status_code == 200
    assert await consent(runtime) is False
    assert await suppressions(runtime) == []
    assert [(c, s) for c, s, _, _ in await changes(runtime)] == [("marketing_off", "one-click")]


async def test_get_asks_and_changes_nothing(client: AsyncClient, runtime: Runtime) -> None:
    await post_event(client, order_created())
    path = path_of(await link_for(runtime, "anna@example.org"))
    for _ in range(3):  # a scanner, a preview, the reader
        response = await client.get(path)
        assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers
    page = response.text
    assert '<form method="post">' in page and 'value="unsubscribe"' in page
    assert "anna@example.org" in page and 'lang="en"' in page
    assert "marketing" in page and "orders" in page
    assert await consent(runtime) is True and await changes(runtime) == []


async def test_page_speaks_the_customers_language(client: AsyncClient, runtime: Runtime) -> None:
    await post_event(client, order_created(email="olga@example.org", locale="ru-RU"))
    path = path_of(await link_for(runtime, "olga@example.org"))
    page = (await client.get(path)).text
    assert 'lang="ru"' in page and "Отписаться" in page
    done = (await one_click(client, path)).text
    assert 'lang="ru"' in done and "Вы отписались" in done


async def test_page_escapes_the_address(client: AsyncClient, runtime: Runtime) -> None:
    token = legacy_token(
        DEFAULT_SHOP, '"<script>alert(1)</script>"@example.org', "dev-unsubscribe-secret"
    )
    page = (await client.get(f"/u/{token}")).text
    assert "<script>" not in page and "&lt;script&gt;" in page


async def test_an_erased_customers_link_changes_nothing(
    client: AsyncClient, runtime: Runtime
) -> None:
    await post_event(client, order_created())
    path = path_of(await link_for(runtime, "anna@example.org"))
    customer_id = await customer_id_of(runtime, "anna@example.org")
    async with transaction(runtime.session_factory) as session:
        await erase_customer(session, customer_id=customer_id, now=runtime.clock.now())
    for response in (await client.get(path), await one_click(client, path)):
        assert response.status_code == 200 and "Nothing to unsubscribe" in response.text
    assert await changes(runtime) == [] and await suppressions(runtime) == []


async def test_bad_tokens_are_404_and_change_nothing(client: AsyncClient, runtime: Runtime) -> None:
    await post_event(client, order_created())
    good = (await link_for(runtime, "anna@example.org")).rsplit("/", 1)[1]
    tampered = good[:-1] + ("a" if good[-1] != "a" else "b")
    foreign = make_token(
        customer_id=await customer_id_of(runtime, "anna@example.org"),
        secrets=["other-key-0123456789"],
    )
    for token in [tampered, foreign, "nonsense", "A" * 40, good.upper()]:
        for method in ("GET", "POST"):
            response = await one_click(client, f"/u/{token}", method)
            assert response.status_code == 404, (method, token)
            assert "not valid" in response.text
    ru = await client.get("/u/nonsense", headers={"Accept-Language": "de;q=1, ru-RU;q=0.8"})
    assert ru.status_code == 404 and "недействительна" in ru.text
    assert await consent(runtime) is True and await changes(runtime) == []


async def test_a_mail_to_the_mailto_address_unsubscribes(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"inbound_domain": "mail.shop.example"})
    use_rules(runtime, tmp_path, MARKETING % "0m")
    await post_event(client, order_created())
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    header = str(smtp_sink.received[0].message["List-Unsubscribe"])
    address = header.split("<mailto:", 1)[1].rstrip(">")
    local_part = address.rsplit("@", 1)[0]
    secrets = runtime.settings.unsubscribe_secrets
    async with transaction(runtime.session_factory) as session:
        # What the inbound listener does with each recipient it is given.
        assert await unsubscribe_by_mail(
            session, local_part=local_part.upper(), secrets=secrets, now=runtime.clock.now()
        )
        assert not await unsubscribe_by_mail(
            session, local_part="bounces+abc", secrets=secrets, now=runtime.clock.now()
        )
    assert await consent(runtime) is False
    assert [(c, s) for c, s, _, _ in await changes(runtime)] == [("marketing_off", "mailto")]


async def test_unsubscribes_and_bounces_after_erasure_keep_only_the_digest(
    client: AsyncClient, runtime: Runtime
) -> None:
    # Issue 16: what arrives about an erased address (an old-format link, which carries the
    # address; a bounce report quoting it) must not bring it back in plain text.
    await post_event(client, order_created())
    customer_id = await customer_id_of(runtime, "anna@example.org")
    async with transaction(runtime.session_factory) as session:
        await erase_customer(session, customer_id=customer_id, now=runtime.clock.now())
    secret = runtime.settings.unsubscribe_secrets[0]
    old = legacy_token("default", "anna@example.org", secret)
    assert (await one_click(client, f"/u/{old}")).status_code == 200
    bounce = Feedback(
        MAIL,
        "dsn-after-erasure",
        FeedbackKind.HARD_BOUNCE,
        "Anna@Example.org",
        "DSN failed 5.1.1 550 5.1.1 <anna@example.org>: no such user",
        reference=None,
    )
    async with transaction(runtime.session_factory) as session:
        applied = await apply_feedback(
            session, reports=[bounce], secret=runtime.settings.secret_key, now=runtime.clock.now()
        )
    assert (applied.recorded, applied.suppressed) == (1, 1)
    assert await suppressions(runtime) == [(email_digest("anna@example.org"), "hard_bounce", None)]
    assert "anna@example.org" not in await database_text(runtime)
    # The digest still stops mail to the address, should a shop send it again.
    async with runtime.session_factory() as session:
        kinds = (await session.execute(select(MailFeedbackEvent.kind))).scalars().all()
    assert kinds == ["hard_bounce"]
