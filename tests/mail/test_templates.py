from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.catalog.links import NamedLinks, ShopLinks
from app.mail.html_to_text import html_to_text
from app.mail.templates import RenderedEmail, TemplateError, TemplateRenderer

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "email"


def sample_context(**customer: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "customer": {"first_name": "Anna", "last_name": "Ivanova", "locale": "ru-RU", **customer},
        "order": {
            "id": "820982911946154508",
            "number": "1001",
            "total": Decimal("1234.50"),
            "currency": "EUR",
            "created_at": datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        },
        "items": [
            {
                "sku": "MUG-1",
                "name": "Tea mug",
                "category": "kitchen",
                "quantity": 2,
                "unit_price": Decimal("17.25"),
                "tags": ["gift"],
                "attributes": {"color": "blue"},
            },
            {
                "sku": "TEA-9",
                "name": "Green tea",
                "category": "tea",
                "quantity": 1,
                "unit_price": None,
                "tags": [],
                "attributes": {},
            },
        ],
        "shop": {"name": "Tea & Co", "url": None, "address": None},
        "message": {"send_at": datetime(2024, 5, 1, 13, 0, tzinfo=UTC)},
        "links": NamedLinks(),
    }
    # What build_context adds to every item: here, a shop that told us nothing.
    for item in context["items"]:
        item.update(ShopLinks().item(SimpleNamespace(**item)))
    return context


@pytest.fixture
def renderer() -> TemplateRenderer:
    return TemplateRenderer(TEMPLATES_DIR, default_locale="en")


def make_templates(root: Path, files: dict[str, str]) -> TemplateRenderer:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return TemplateRenderer(root, default_locale="en")


def test_english_thank_you(renderer: TemplateRenderer) -> None:
    email = renderer.render("thank-you", locale="en", context=sample_context())

    assert isinstance(email, RenderedEmail)
    assert email.subject == "Thank you for your order #1001 at Tea & Co"
    assert "Hi Anna," in email.text
    assert "Tea mug" in email.text and "Green tea" in email.text
    assert "€1,234.50" in email.text
    assert "€17.25" in email.html
    assert "May 1, 2024" in email.html
    # Autoescaped in HTML, literal in the text part.
    assert "Tea &amp; Co" in email.html
    assert "Tea & Co" in email.text


def test_russian_thank_you_with_region_locale(renderer: TemplateRenderer) -> None:
    email = renderer.render("thank-you", locale="ru-RU", context=sample_context())

    assert email.subject == "Спасибо за заказ №1001 в Tea & Co"
    assert "Anna, здравствуйте!" in email.text
    assert "1\xa0234,50\xa0€" in email.text
    assert "Итого" in email.html
    assert "1 мая 2024" in email.html


def test_renders_without_total_or_first_name(renderer: TemplateRenderer) -> None:
    context = sample_context(first_name=None)
    context["order"] = {
        "id": "7",
        "number": "7",
        "total": None,
        "currency": None,
        "created_at": None,
    }

    for locale, greeting in (("en", "Hi there,"), ("ru", "Здравствуйте!")):
        email = renderer.render("thank-you", locale=locale, context=context)
        assert greeting in email.text
        assert "None" not in email.text and "None" not in email.html


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("ru-RU", "Спасибо"),
        ("ru_RU", "Спасибо"),
        ("ru", "Спасибо"),
        ("de", "Thank you"),
        (None, "Thank you"),
    ],
)
def test_locale_fallback(renderer: TemplateRenderer, locale: str | None, expected: str) -> None:
    email = renderer.render("thank-you", locale=locale, context=sample_context())
    assert email.subject.startswith(expected)


def test_fallback_formats_money_in_the_template_language(renderer: TemplateRenderer) -> None:
    # A German customer gets the English template, so numbers read the English way.
    email = renderer.render("thank-you", locale="de-DE", context=sample_context())
    assert "€1,234.50" in email.text


def test_has_template(renderer: TemplateRenderer) -> None:
    assert renderer.has_template("thank-you", "ru-RU")
    assert renderer.has_template("thank-you", "de")
    assert not renderer.has_template("no-such-template", "en")
    assert not renderer.has_template("../thank-you", "en")


@pytest.mark.parametrize("name", ["../etc", "thank-you/../x", "Thank-You", "_layouts", "", "a b"])
def test_refuses_non_slug_names(renderer: TemplateRenderer, name: str) -> None:
    with pytest.raises(TemplateError, match="invalid template name"):
        renderer.render(name, locale="en", context=sample_context())


def test_locale_cannot_escape_the_template_folder(tmp_path: Path) -> None:
    renderer = make_templates(
        tmp_path,
        {
            "t/en/subject.txt": "english",
            "t/en/body.html": "<p>en</p>",
            "secret/subject.txt": "secret",
            "secret/body.html": "secret",
        },
    )
    email = renderer.render("t", locale="../secret", context={})
    assert email.subject == "english"


def test_missing_template_names_what_was_tried(renderer: TemplateRenderer) -> None:
    with pytest.raises(TemplateError, match=r"no-such.*ru-RU.*ru_RU.*ru.*en"):
        renderer.render("no-such", locale="ru-RU", context={})


def test_undefined_variable_names_the_file_and_line(tmp_path: Path) -> None:
    renderer = make_templates(
        tmp_path,
        {
            "t/en/subject.txt": "Hello",
            "t/en/body.html": "<p>one</p>\n<p>{{ customer.nickname }}</p>\n",
        },
    )
    with pytest.raises(TemplateError) as caught:
        renderer.render("t", locale="en", context={"customer": {"first_name": "A"}})
    message = str(caught.value)
    assert "t/en/body.html line 2" in message
    assert "nickname" in message


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    renderer = make_templates(
        tmp_path,
        {"t/en/subject.txt": "Hello {% if %}", "t/en/body.html": "<p>x</p>"},
    )
    with pytest.raises(TemplateError, match=r"t/en/subject\.txt line 1"):
        renderer.render("t", locale="en", context={})


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ customer.__init__.__globals__ }}",
        "{{ items.append(1) }}",
    ],
)
def test_sandbox_refuses_unsafe_access(tmp_path: Path, expression: str) -> None:
    renderer = make_templates(
        tmp_path, {"t/en/subject.txt": "Hi", "t/en/body.html": f"<p>{expression}</p>"}
    )
    with pytest.raises(TemplateError, match=r"t/en/body\.html"):
        renderer.render("t", locale="en", context={"customer": {}, "items": []})


def test_html_is_autoescaped_and_text_is_not(renderer: TemplateRenderer) -> None:
    context = sample_context(first_name="<script>alert(1)</script>")
    email = renderer.render("thank-you", locale="en", context=context)

    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "Hi <script>alert(1)</script>," in email.text


def test_subject_is_one_line_and_not_escaped(tmp_path: Path) -> None:
    renderer = make_templates(
        tmp_path,
        {
            "t/en/subject.txt": "\n  Order {{ name }}\n\n",
            "t/en/body.html": "<p>{{ name }}</p>",
        },
    )
    email = renderer.render("t", locale="en", context={"name": "A & B\r\nBcc: x@y\x00z"})
    assert email.subject == "Order A & B Bcc: x@y z"
    assert "A &amp; B" in email.html


def test_text_part_is_derived_from_html_when_body_txt_is_missing(tmp_path: Path) -> None:
    renderer = make_templates(
        tmp_path,
        {
            "_layouts/base.html": (
                "<html><head><title>T</title><style>p { color: red; }</style></head>"
                "<body>{% block content %}{% endblock %}<script>var x = 1;</script></body></html>"
            ),
            "t/en/subject.txt": "Hi",
            "t/en/body.html": (
                '{% extends "_layouts/base.html" %}{% block content %}'
                "<p>Hello {{ name }},</p><p>Your   order\n is <b>ready</b>.</p>"
                "<ul><li>One</li><li>Two</li></ul>"
                '<p><a href="https://shop.example/o/1">Track it</a>'
                "<br>Thanks</p>{% endblock %}"
            ),
        },
    )
    email = renderer.render("t", locale="en", context={"name": "Anna"})
    assert email.text == (
        "Hello Anna,\n\nYour order is ready.\n\n- One\n- Two\n\n"
        "Track it (https://shop.example/o/1)\nThanks\n"
    )


def test_html_to_text_links_and_entities() -> None:
    html = (
        '<p>Mail <a href="mailto:help@example.com">help@example.com</a> or '
        '<a href="https://x.example/">https://x.example/</a> &amp; <a href="#top">top</a></p>'
    )
    assert html_to_text(html) == "Mail help@example.com or https://x.example/ & top"


def test_money_filter_without_currency(tmp_path: Path) -> None:
    renderer = make_templates(
        tmp_path,
        {"t/ru/subject.txt": "{{ amount|money(none) }}", "t/ru/body.html": "x"},
    )
    email = renderer.render("t", locale="ru", context={"amount": Decimal("1234.5")})
    assert email.subject == "1 234,50"


def test_date_and_datetime_filters(tmp_path: Path) -> None:
    renderer = make_templates(
        tmp_path,
        {
            "t/en/subject.txt": "{{ at|date }} | {{ at|datetime('short', tz='Europe/Moscow') }}",
            "t/en/body.html": "x",
        },
    )
    at = datetime(2024, 5, 1, 21, 30, tzinfo=UTC)
    email = renderer.render("t", locale="en-GB", context={"at": at})
    assert email.subject == "1 May 2024 | 02/05/2024, 00:30"


def test_renderer_adds_nothing_to_the_context(tmp_path: Path) -> None:
    renderer = make_templates(
        tmp_path, {"t/en/subject.txt": "{{ settings }}", "t/en/body.html": "x"}
    )
    with pytest.raises(TemplateError, match="settings"):
        renderer.render("t", locale="en", context={})


def test_a_long_lived_renderer_sees_edits_after_its_recheck_interval(tmp_path: Path) -> None:
    make_templates(
        tmp_path,
        {
            "layout.html": "<p>{% block main %}{% endblock %}</p>",
            "note/en/subject.txt": "Hello",
            "note/en/body.html": '{% extends "layout.html" %}{% block main %}one{% endblock %}',
        },
    )
    trusting = TemplateRenderer(tmp_path, default_locale="en", recheck_seconds=3600)
    checking = TemplateRenderer(tmp_path, default_locale="en", recheck_seconds=0)
    for renderer in (trusting, checking):
        assert "<body><p>one</p></body>" in renderer.render("note", locale="de", context={}).html
        assert renderer.render("note", locale="en", context={}).text == "one\n"

    def edit(name: str, text: str) -> None:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        stamp = path.stat().st_mtime + 5  # a new mtime even on a coarse file system
        os.utime(path, (stamp, stamp))

    # The layout a body extends counts, and so does a new locale folder and a new body.txt.
    edit("layout.html", "<div>{% block main %}{% endblock %}</div>")
    make_templates(tmp_path, {"note/de/subject.txt": "Hallo", "note/de/body.html": "zwei"})
    edit("note/en/body.txt", "plain")
    assert "<body><p>one</p></body>" in trusting.render("note", locale="de", context={}).html
    assert trusting.render("note", locale="en", context={}).text == "one\n"
    assert "<body>zwei</body>" in checking.render("note", locale="de", context={}).html
    english = checking.render("note", locale="en", context={})
    assert (english.text, "<body><div>one</div></body>" in english.html) == ("plain\n", True)
    # Deleted: refused at once, not rendered from memory.
    (tmp_path / "note/de/body.html").unlink()
    (tmp_path / "note/en/body.html").unlink()
    with pytest.raises(TemplateError, match=r"has no subject\.txt"):
        checking.render("note", locale="de", context={})
