from __future__ import annotations

import asyncio
import email
import email.policy
import json
import shutil
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient

from app.cli import main
from app.config import ROOT, Settings
from app.events import EXAMPLE_BODY
from app.mail.unsubscribe import SAMPLE_CUSTOMER_ID, CustomerToken, read_token
from app.preview.endpoints import PREVIEW_CSP
from app.runtime import Runtime
from tests.catalog import shop_history
from tests.catalog.shop_history import load_shop
from tests.conftest import Api
from tests.factories import order_created

MUG = {"sku": "MUG-1", "name": "Tea mug", "category": "kitchen", "quantity": 1}
DIAPERS = {
    "sku": "DIAPER-M-60",
    "name": "Diapers M, 60 pcs",
    "category": "baby/diapers",
    "quantity": 2,
    "unit_price": "24.90",
}


def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """`aftersale` reads its settings from the environment: point it where the tests run."""
    monkeypatch.setenv("AFTERSALE_ENV", "development")
    monkeypatch.setenv("AFTERSALE_RULES_DIR", str(settings.rules_dir))
    monkeypatch.setenv("AFTERSALE_TEMPLATES_DIR", str(settings.templates_dir))
    monkeypatch.setenv("AFTERSALE_DATABASE_URL", settings.database_url)
    assert settings.smtp_url is not None
    monkeypatch.setenv("AFTERSALE_SMTP_URL", settings.smtp_url)


def order_file(folder: Path, **values: Any) -> tuple[Path, dict[str, Any]]:
    body = order_created(**values)
    path = folder / "order.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path, body


def eml(path: Path) -> EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def part(message: EmailMessage, subtype: str) -> str:
    """A part's content as written to the preview files: LF line ends, no final newline."""
    body = message.get_body(preferencelist=(subtype,))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n").rstrip("\n")


def add_rule(settings: Settings, name: str) -> None:
    shutil.copy(ROOT / "rules" / name, settings.rules_dir)


# --- aftersale preview --------------------------------------------------------------------


def test_preview_writes_the_message_files_in_english(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path
) -> None:
    cli_env(monkeypatch, settings)
    order, body = order_file(tmp_path, locale="en")
    out = tmp_path / "preview"
    code = main(["preview", "thank-you", "--order", str(order), "--out", str(out)])
    assert code == 0
    order_id = body["order"]["id"]
    subject = (out / "subject.txt").read_text(encoding="utf-8")
    assert subject == f"Thank you for your order #{order_id} at Aftersale Shop\n"
    text = (out / "body.txt").read_text(encoding="utf-8")
    assert text.startswith("Hi Anna,\n")
    assert "- Diapers M, 60 pcs: 2 x €24.90" in text
    assert "Total: €49.80" in text
    html = (out / "body.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in html
    assert "Thank you for your order!" in html
    assert "<style>" in html  # kept beside the inlined styles
    message = eml(out / "message.eml")
    assert message["Subject"] == subject.strip()
    assert message["From"] == "Aftersale Shop <shop@example.com>"
    assert message["To"] == "Anna Ivanova <anna@example.org>"
    assert message["Message-ID"].endswith("@example.com>")
    assert "List-Unsubscribe" not in message  # thank-you is transactional
    assert part(message, "plain") == text.rstrip("\n")
    assert part(message, "html") == html.rstrip("\n")


def test_preview_in_russian(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path
) -> None:
    cli_env(monkeypatch, settings)
    order, body = order_file(tmp_path, locale="ru")
    out = tmp_path / "preview"
    assert main(["preview", "thank-you", "--order", str(order), "--out", str(out)]) == 0
    subject = (out / "subject.txt").read_text(encoding="utf-8")
    assert subject == f"Спасибо за заказ №{body['order']['id']} в Aftersale Shop\n"
    text = (out / "body.txt").read_text(encoding="utf-8")
    assert text.startswith("Anna, здравствуйте!\n")
    assert "Итого: 49,80\xa0€" in text
    html = (out / "body.html").read_text(encoding="utf-8")
    assert '<html lang="ru">' in html
    assert "Спасибо за заказ!" in html
    message = eml(out / "message.eml")
    assert message["Subject"] == subject.strip()
    assert part(message, "plain") == text.rstrip("\n")


def test_locale_option_replaces_the_customers(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_env(monkeypatch, settings)
    order, body = order_file(tmp_path, locale="en")
    assert main(["preview", "thank-you", "--order", str(order), "--locale", "ru"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"Спасибо за заказ №{body['order']['id']} в Aftersale Shop\n\n")
    assert "Anna, здравствуйте!" in printed


def test_without_out_prints_subject_and_text(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_env(monkeypatch, settings)
    order, body = order_file(tmp_path, locale="en", first_name="Bea")
    assert main(["preview", "thank-you", "--order", str(order)]) == 0
    subject, blank, *text = capsys.readouterr().out.split("\n")
    assert subject == f"Thank you for your order #{body['order']['id']} at Aftersale Shop"
    assert blank == ""
    assert text[0] == "Hi Bea,"
    assert not list(tmp_path.glob("*/message.eml"))


def test_a_marketing_rule_brings_its_items_filter_and_unsubscribe_link(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_env(monkeypatch, settings)
    add_rule(settings, "diapers-restock.yaml")
    order, _ = order_file(tmp_path, locale="en", items=[MUG, DIAPERS])
    out = tmp_path / "preview"
    code = main(["preview", "diapers-restock", "--order", str(order), "--out", str(out)])
    assert code == 0
    assert "as rule 'diapers-restock' (marketing)" in capsys.readouterr().err
    text = (out / "body.txt").read_text(encoding="utf-8")
    # What the dispatcher would list: the items the rule is about, not the mug.
    assert "- Diapers M, 60 pcs × 2" in text
    assert "Tea mug" not in text
    message = eml(out / "message.eml")
    [link] = message.get_all("List-Unsubscribe")
    token = link.strip("<>").rsplit("/", 1)[1]
    # A sample token: it names no customer, so using it unsubscribes nobody.
    assert read_token(token, secrets=settings.unsubscribe_secrets) == CustomerToken(
        SAMPLE_CUSTOMER_ID
    )
    assert f"Unsubscribe: {link.strip('<>')}" in text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["no-such-template"], "no-such-template"),
        (["thank-you", "--rule", "nope"], "no rule 'nope'"),
    ],
)
def test_preview_problems_exit_1(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    says: str,
) -> None:
    cli_env(monkeypatch, settings)
    order, _ = order_file(tmp_path)
    assert main(["preview", *args, "--order", str(order)]) == 1
    captured = capsys.readouterr()
    assert says in captured.err
    assert captured.out == ""


def test_an_order_file_that_is_not_an_order_exits_1(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_env(monkeypatch, settings)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "evt-1", "type": "order.created"}))
    assert main(["preview", "thank-you", "--order", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "not an order.created webhook body" in err
    assert "occurred_at" in err
    assert main(["preview", "thank-you", "--order", str(tmp_path / "missing.json")]) == 1
    assert "missing.json" in capsys.readouterr().err


# --- POST /api/v1/preview -----------------------------------------------------------------


async def test_preview_api_needs_a_key(client: AsyncClient) -> None:
    response = await client.post("/api/v1/preview?rule=thank-you", json=order_created())
    assert response.status_code == 401
    response = await client.post(
        "/api/v1/preview?rule=thank-you",
        json=order_created(),
        headers={"Authorization": "Bearer wrong-key-0123456789"},
    )
    assert response.status_code == 401


async def test_preview_api_returns_the_message(client: AsyncClient, api: Api) -> None:
    body = order_created(locale="en")
    response = await client.post("/api/v1/preview?rule=thank-you", json=body, headers=api.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-security-policy"] == PREVIEW_CSP
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    assert set(data) == {"subject", "text", "html", "eml"}
    assert data["subject"] == f"Thank you for your order #{body['order']['id']} at Aftersale Shop"
    assert data["text"].startswith("Hi Anna,\n")
    assert 'style="' in data["html"]
    message = email.message_from_string(data["eml"], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == data["subject"]
    assert part(message, "html") == data["html"].rstrip("\n")


async def test_preview_api_html_carries_the_csp(client: AsyncClient, api: Api) -> None:
    response = await client.post(
        "/api/v1/preview?rule=thank-you&format=html&locale=ru",
        json=order_created(locale="en"),
        headers=api.headers,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert (
        response.headers["content-security-policy"]
        == "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "Спасибо за заказ!" in response.text


async def test_preview_api_problems(client: AsyncClient, api: Api) -> None:
    response = await client.post(
        "/api/v1/preview?rule=nope", json=order_created(), headers=api.headers
    )
    assert response.status_code == 404
    invalid = order_created()
    del invalid["customer"]
    response = await client.post(
        "/api/v1/preview?rule=thank-you", json=invalid, headers=api.headers
    )
    assert response.status_code == 422
    response = await client.post(
        "/api/v1/preview?rule=thank-you&format=pdf", json=order_created(), headers=api.headers
    )
    assert response.status_code == 422


# --- recommendations ------------------------------------------------------------------------

COFFEE_RULE = """
rules:
  - id: coffee-next-variety
    when: {event: order.created, items: {category: [coffee]}}
    send: {after: 4w}
    template: coffee-next-variety
    recommend: {count: 3, from: co_purchase, exclude: owned}
"""


async def test_preview_shows_what_the_catalog_recommends(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (settings.rules_dir / "thank-you.yaml").unlink()  # the history plans no mail
    runtime.rules.reload()
    await load_shop(client, api)
    (settings.rules_dir / "coffee.yaml").write_text(COFFEE_RULE)
    assert runtime.rules.reload()
    body = shop_history.anna_order("COF-ETH-500")

    # The API: the same three products as the dispatcher's mail, none that Anna owns.
    response = await client.post(
        "/api/v1/preview?rule=coffee-next-variety", json=body, headers=api.headers
    )
    assert response.status_code == 200, response.text
    text = response.json()["text"]
    for sku in shop_history.EXPECTED:
        assert shop_history.TITLES[sku] in text and shop_history.URLS[sku] in text, text
    assert shop_history.TITLES["COF-KEN-500"] not in text

    # The command, reading the same database.
    cli_env(monkeypatch, settings)
    path = tmp_path / "order.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    code = await asyncio.to_thread(
        main, ["preview", "coffee-next-variety", "--order", str(path), "--out", str(tmp_path / "p")]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert f"recommendations: {', '.join(shop_history.EXPECTED)}" in err
    html = (tmp_path / "p" / "body.html").read_text(encoding="utf-8")
    for sku in shop_history.EXPECTED:
        assert shop_history.TITLES[sku] in html and f'href="{shop_history.URLS[sku]}"' in html


def test_preview_without_a_database_renders_without_recommendations(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (settings.rules_dir / "coffee.yaml").write_text(COFFEE_RULE)
    cli_env(monkeypatch, settings)
    monkeypatch.setenv("AFTERSALE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/none/x.db")
    path, _ = order_file(tmp_path, items=[shop_history.item("COF-ETH-500")])
    assert main(["preview", "coffee-next-variety", "--order", str(path)]) == 0
    captured = capsys.readouterr()
    assert "aftersale preview: no recommendations (database:" in captured.err
    assert "Ready to try a new coffee?" in captured.out
    assert "Picked for you" not in captured.out


async def test_preview_links_the_items_to_their_catalog_pages(
    client: AsyncClient, api: Api
) -> None:
    # The sample order's item is in the catalog: the preview shows its page, as the sent
    # mail does (tests/outbox/test_shoppable_mail.py), not a name without a link.
    sku = EXAMPLE_BODY["order"]["items"][0]["sku"]
    page = "https://shop.example/products/diapers-4"
    product = {
        "id": "diapers-4",
        "title": "Öko-Windeln Größe 4",
        "url": page,
        "image_url": "https://shop.example/img/diapers-4.jpg",
        "variants": [{"id": "d4-44", "sku": sku, "price": "19.99"}],
    }
    stored = await client.put(
        "/api/v1/products",
        json={"shop": "default", "currency": "EUR", "products": [product]},
        headers=api.headers,
    )
    assert stored.status_code == 200, stored.text
    response = await client.post(
        "/api/v1/preview?rule=thank-you", json=EXAMPLE_BODY, headers=api.headers
    )
    assert response.status_code == 200, response.text
    assert f'href="{page}' in response.json()["html"]
