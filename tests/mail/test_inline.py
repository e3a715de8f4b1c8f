from __future__ import annotations

import re
from pathlib import Path

from app.mail.inline import inline_css
from app.mail.templates import TemplateRenderer
from tests.mail.test_templates import TEMPLATES_DIR, make_templates, sample_context

STYLED = """<!DOCTYPE html>
<html lang="en">
<head>
<style>
  .note { color: #b91c1c; font-weight: bold; }
  a.button { background-color: #18181b; }
  @media only screen and (max-width: 620px) { .note { font-size: 14px !important; } }
</style>
<link rel="stylesheet" href="https://cdn.example.com/mail.css">
</head>
<body>
<p class="note">Hi {{ customer.first_name }}</p>
<p class="note" style="color: #0000ff">Own colour</p>
<a class="button" href="https://shop.example/">Open the shop</a>
</body>
</html>
"""


def renderer_with(tmp_path: Path, html: str) -> TemplateRenderer:
    return make_templates(tmp_path, {"styled/en/subject.txt": "Hello", "styled/en/body.html": html})


def element(html: str, text: str) -> str:
    """The start tag of the element whose content starts with `text`."""
    match = re.search(rf"<(p|a)\b[^>]*>{re.escape(text)}", html)
    assert match is not None, f"no element with {text!r} in {html}"
    return match.group(0)


def test_style_rules_land_on_the_elements(tmp_path: Path) -> None:
    rendered = renderer_with(tmp_path, STYLED).render(
        "styled", locale="en", context=sample_context()
    )
    note = element(rendered.html, "Hi Anna")
    assert 'style="' in note
    assert "color: #b91c1c" in note
    assert "font-weight: bold" in note
    assert "background-color: #18181b" in element(rendered.html, "Open the shop")


def test_an_elements_own_style_wins(tmp_path: Path) -> None:
    rendered = renderer_with(tmp_path, STYLED).render(
        "styled", locale="en", context=sample_context()
    )
    own = element(rendered.html, "Own colour")
    assert "color: #0000ff" in own
    assert "#b91c1c" not in own
    assert "font-weight: bold" in own  # what the element does not set still comes in


def test_the_style_element_stays_for_media_queries(tmp_path: Path) -> None:
    rendered = renderer_with(tmp_path, STYLED).render(
        "styled", locale="en", context=sample_context()
    )
    assert "<style>" in rendered.html
    assert "@media only screen and (max-width: 620px)" in rendered.html


def test_nothing_is_fetched_and_links_to_stylesheets_are_dropped(tmp_path: Path) -> None:
    # A fetch would fail here (no network, no such host); the render succeeds regardless.
    rendered = renderer_with(tmp_path, STYLED).render(
        "styled", locale="en", context=sample_context()
    )
    assert "cdn.example.com" not in rendered.html
    assert inline_css('<link rel="stylesheet" href="/etc/hostname"><p>x</p>').count("style=") == 0


def test_text_part_is_still_derived_from_the_html(tmp_path: Path) -> None:
    rendered = renderer_with(tmp_path, STYLED).render(
        "styled", locale="en", context=sample_context()
    )
    assert rendered.text.startswith("Hi Anna\n")
    assert "Open the shop (https://shop.example/)" in rendered.text
    assert "color" not in rendered.text
    assert "@media" not in rendered.text


def test_shipped_layout_keeps_its_responsive_rules() -> None:
    renderer = TemplateRenderer(TEMPLATES_DIR, default_locale="en")
    rendered = renderer.render("thank-you", locale="en", context=sample_context())
    assert ".container { width: 100% !important; }" in rendered.html
    # Inline styles written in the templates are kept as they are.
    assert "background-color:#f4f4f5" in rendered.html.replace(" ", "")
