"""One-click unsubscribe: signed tokens, the RFC 8058 headers, the /u pages, send-time skip."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select

from app.intake.aftersale import DEFAULT_SHOP
from app.mail.compose import compose_message, message_bytes
from app.mail.templates import RenderedEmail
from app.mail.unsubscribe import (
    MAX_TOKEN_LENGTH,
    Recipient,
    make_token,
    read_token,
    unsubscribe_url,
)
from app.models import Message, Suppression
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import order_created, post_event
from tests.outbox.conftest import make_dispatcher, use_rules
from tests.smtp_sink import SmtpSink

KEY = "unsubscribe-key-0123456789"
OLD_KEY = "unsubscribe-old-key-0123456789"
MARKETING = """
rules:
  - id: next-coffee
    kind: marketing
    when: {event: order.created}
    send: {after: %s}
    template: coffee-next-variety
"""


# --- tokens: pure functions ---------------------------------------------------------------


def test_token_names_the_shop_and_the_lower_cased_address() -> None:
    token = make_token(shop="tea-shop", email="Anna@Example.ORG", secrets=[KEY])
    assert read_token(token, secrets=[KEY]) == Recipient(shop="tea-shop", email="anna@example.org")
    assert token == make_token(shop="tea-shop", email="anna@example.org", secrets=[KEY])
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_token_is_bound_to_recipient_and_shop() -> None:
    anna = make_token(shop="tea-shop", email="anna@example.org", secrets=[KEY])
    assert anna != make_token(shop="tea-shop", email="boris@example.org", secrets=[KEY])
    assert anna != make_token(shop="coffee-shop", email="anna@example.org", secrets=[KEY])


def test_token_needs_the_secret() -> None:
    token = make_token(shop="s", email="anna@example.org", secrets=[KEY])
    assert read_token(token, secrets=["another-key-0123456789"]) is None
    assert read_token(token, secrets=[]) is None
    with pytest.raises(ValueError, match="secret"):
        make_token(shop="s", email="anna@example.org", secrets=[])


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_every_tampered_byte_is_refused() -> None:
    raw = _raw(make_token(shop="s", email="anna@example.org", secrets=[KEY]))
    for index in range(len(raw)):
        changed = bytearray(raw)
        changed[index] ^= 0x01
        assert read_token(_token(bytes(changed)), secrets=[KEY]) is None, index


def test_another_address_under_a_valid_signature_is_refused() -> None:
    raw = _raw(make_token(shop="s", email="anna@example.org", secrets=[KEY]))
    forged = raw.replace(b"anna@example.org", b"boris@example.org")
    assert read_token(_token(forged), secrets=[KEY]) is None
    assert read_token(_token(raw[:-1]), secrets=[KEY]) is None
    assert read_token(_token(raw + b"x"), secrets=[KEY]) is None


@pytest.mark.parametrize(
    "token",
    ["", "a", "!!!!", "abc=", "a+b/", "a" * (MAX_TOKEN_LENGTH + 1), "AQ", _token(b"\x02" * 60)],
)
def test_garbage_is_refused(token: str) -> None:
    assert read_token(token, secrets=[KEY]) is None


def test_only_the_canonical_spelling_is_accepted() -> None:
    # A length that leaves unused bits in the last character, so other spellings exist.
    token = next(
        token
        for name in ("a", "ab", "abc", "abcd")
        if len(token := make_token(shop="s", email=f"{name}@example.org", secrets=[KEY])) % 4
    )
    assert read_token(token, secrets=[KEY]) is not None
    for padding in ("=", "=="):
        assert read_token(token + padding, secrets=[KEY]) is None
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variants = [token[:-1] + other for other in alphabet if other != token[-1]]
    same_bytes = [variant for variant in variants if _raw(variant) == _raw(token)]
    assert same_bytes
    for variant in same_bytes:
        assert read_token(variant, secrets=[KEY]) is None


def test_key_rotation() -> None:
    old_link = make_token(shop="s", email="anna@example.org", secrets=[OLD_KEY])
    # The new key goes first: new links use it, links signed with the old one still work.
    rotated = [KEY, OLD_KEY]
    assert read_token(old_link, secrets=rotated) == Recipient("s", "anna@example.org")
    new_link = make_token(shop="s", email="anna@example.org", secrets=rotated)
    assert new_link == make_token(shop="s", email="anna@example.org", secrets=[KEY])
    assert read_token(new_link, secrets=rotated) == Recipient("s", "anna@example.org")
    # Once the old key is retired, its links stop working.
    assert read_token(old_link, secrets=[KEY]) is None


def test_url_is_public_url_slash_u_slash_token() -> None:
    url = unsubscribe_url(
        public_url="https://mail.shop.example/", shop="s", email="a@example.org", secrets=[KEY]
    )
    token = make_token(shop="s", email="a@example.org", secrets=[KEY])
    assert url == f"https://mail.shop.example/u/{token}"


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


def test_extra_headers_cannot_set_list_unsubscribe() -> None:
    for name in ("List-Unsubscribe", "list-unsubscribe-post"):
        with pytest.raises(ValueError, match="not allowed"):
            compose(extra_headers={name: "<https://evil.example/>"})


# --- through the dispatcher and the SMTP sink -----------------------------------------------


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-u")
    yield worker
    await worker.sender.close()


def link_for(runtime: Runtime, email: str, shop: str = DEFAULT_SHOP) -> str:
    settings = runtime.settings
    return unsubscribe_url(
        public_url=settings.public_url, shop=shop, email=email, secrets=settings.unsubscribe_secrets
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


async def suppressions(runtime: Runtime) -> list[tuple[str, str, str | None]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Suppression.email, Suppression.reason, Suppression.detail)
        )
        return [(row[0], row[1], row[2]) for row in rows]


async def test_marketing_mail_carries_the_one_click_headers(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, MARKETING % "0m")
    await post_event(client, order_created(email="Anna@Example.org"))
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    [mail] = smtp_sink.received
    url = link_for(runtime, "anna@example.org")
    assert url.startswith(f"{runtime.settings.public_url}/u/")
    message = mail.message
    assert message.get_all("List-Unsubscribe") == [f"<{url}>"]
    assert message.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    # Exactly as written on the wire: one line, no encoded-words.
    assert f"\r\nList-Unsubscribe: <{url}>\r\n".encode() in mail.raw
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in mail.raw
    # The same link in the footer, for readers whose mail client shows no button.
    assert f'href="{url}"' in mail.part("text/html")
    assert f"Unsubscribe: {url}" in mail.part("text/plain")
    token = url.rsplit("/", 1)[1]
    assert read_token(token, secrets=runtime.settings.unsubscribe_secrets) == Recipient(
        DEFAULT_SHOP, "anna@example.org"
    )


async def test_transactional_mail_has_no_unsubscribe(
    client: AsyncClient, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    await post_event(client, order_created())  # the thank-you rule: transactional
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    [mail] = smtp_sink.received
    assert "List-Unsubscribe" not in mail.message
    assert "List-Unsubscribe-Post" not in mail.message
    assert b"/u/" not in mail.raw


async def test_one_click_post_unsubscribes_at_once(client: AsyncClient, runtime: Runtime) -> None:
    path = path_of(link_for(runtime, "anna@example.org"))
    response = await one_click(client, path)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "anna@example.org" in response.text
    assert await suppressions(runtime) == [("anna@example.org", "unsubscribe", "one-click")]
    again = await one_click(client, path)
    assert again.status_code == 200
    assert len(await suppressions(runtime)) == 1


async def test_page_form_post_unsubscribes_and_keeps_an_earlier_reason(
    client: AsyncClient, runtime: Runtime
) -> None:
    path = path_of(link_for(runtime, "anna@example.org"))
    response = await client.post(
        path,
        content=b"confirm=page",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert await suppressions(runtime) == [("anna@example.org", "unsubscribe", "unsubscribe page")]
    bounced = path_of(link_for(runtime, "gone@example.org"))
    async with runtime.session_factory() as session, session.begin():
        session.add(Suppression(email="gone@example.org", reason="hard_bounce"))
    assert (await client.post(bounced)).status_code == 200  # no body at all is fine too
    reasons = {email: reason for email, reason, _ in await suppressions(runtime)}
    assert reasons["gone@example.org"] == "hard_bounce"


async def test_get_asks_and_does_not_unsubscribe(client: AsyncClient, runtime: Runtime) -> None:
    path = path_of(link_for(runtime, "anna@example.org"))
    for _ in range(3):  # a scanner, a preview, the reader
        response = await client.get(path)
        assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers
    page = response.text
    assert '<form method="post">' in page and "<button" in page
    assert "anna@example.org" in page and 'lang="en"' in page
    assert await suppressions(runtime) == []


async def test_page_speaks_the_customers_language(client: AsyncClient, runtime: Runtime) -> None:
    await post_event(client, order_created(email="olga@example.org", locale="ru-RU"))
    path = path_of(link_for(runtime, "olga@example.org"))
    page = (await client.get(path)).text
    assert 'lang="ru"' in page and "Отписаться" in page
    done = (await one_click(client, path)).text
    assert 'lang="ru"' in done and "Вы отписались" in done
    # Someone we have no customer row for gets English.
    stranger = (await client.get(path_of(link_for(runtime, "x@example.org")))).text
    assert 'lang="en"' in stranger


async def test_page_escapes_the_address(client: AsyncClient, runtime: Runtime) -> None:
    path = path_of(link_for(runtime, '"<script>alert(1)</script>"@example.org'))
    page = (await client.get(path)).text
    assert "<script>" not in page and "&lt;script&gt;" in page


async def test_bad_tokens_are_404_and_change_nothing(client: AsyncClient, runtime: Runtime) -> None:
    good = link_for(runtime, "anna@example.org").rsplit("/", 1)[1]
    raw = bytearray(_raw(good))
    raw[-1] ^= 0x01
    foreign = make_token(
        shop=DEFAULT_SHOP, email="anna@example.org", secrets=["other-key-0123456789"]
    )
    for token in [_token(bytes(raw)), foreign, "nonsense", "A" * 40]:
        for method in ("GET", "POST"):
            response = await one_click(client, f"/u/{token}", method)
            assert response.status_code == 404, (method, token)
            assert "not valid" in response.text
    ru = await client.get("/u/nonsense", headers={"Accept-Language": "de;q=1, ru-RU;q=0.8"})
    assert ru.status_code == 404 and "недействительна" in ru.text
    assert await suppressions(runtime) == []


async def test_unsubscribed_before_send_time_is_skipped(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, MARKETING % "1d")
    await post_event(client, order_created(email="anna@example.org"))
    assert (await dispatcher.run_once()).claimed == 0  # planned for tomorrow
    response = await one_click(client, path_of(link_for(runtime, "anna@example.org")))
    assert response.status_code == 200
    clock.advance(days=2)
    assert (await dispatcher.run_once()).outcomes == {"skipped": 1}
    assert smtp_sink.received == []
    async with runtime.session_factory() as session:
        message = (await session.execute(select(Message))).scalar_one()
    assert (message.status, message.status_reason) == ("skipped", "suppressed")
