"""Link rewriting: only http(s) hrefs change, only their URL, and nothing else in the HTML."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.rules.lint import check_rules
from app.tracking.rewrite import (
    HONEYPOT_HTML,
    PIXEL_HTML,
    find_links,
    html_hrefs,
    link_scheme,
    rewrite,
)

UNSUBSCRIBE = "https://mail.shop.example/u/AbC-123_x"

HTML = """<!DOCTYPE html>
<html><head><link href="https://fonts.example/css" rel="stylesheet">
<style>a[href="https://in-style.example/"] { color: red }</style></head>
<BODY style="margin:0">
<p><a href="https://shop.example/review?order=1001&amp;utm_source=mail">Review</a></p>
<p><A class=btn HREF='https://shop.example/care'>Care</A>
<a href=http://shop.example/faq>FAQ</a></p>
<p><a title="href=https://not.a.link/" data-href="https://not.a.link/"
  href=" https://shop.example/x ">X</a></p>
<p><a href="mailto:help@shop.example">Mail us</a> <a href="tel:+491234">Call</a>
<a href="#top">Top</a></p>
<!--[if mso]><v:roundrect href="https://shop.example/vml" style="width:200px"><![endif]-->
<!-- <a href="https://shop.example/commented-out">old</a> -->
<script>var s = '<a href="https://in-script.example/">';</script>
<img src="https://shop.example/logo.png" alt="">
<p><a href="https://mail.shop.example/u/AbC-123_x">Unsubscribe</a></p>
</BODY></html>
"""

TEXT = """Review: https://shop.example/review?order=1001&utm_source=mail.
Care guide (https://shop.example/care), FAQ: <http://shop.example/faq>
Wiki: https://en.wikipedia.org/wiki/Coffee_(disambiguation)!
Write to help@shop.example or mailto:help@shop.example
Unsubscribe: https://mail.shop.example/u/AbC-123_x
"""


def links() -> list[tuple[str, str]]:
    return [
        (link.part, link.url)
        for link in find_links(
            HTML,
            TEXT,
            untouched={UNSUBSCRIBE},
            untouched_prefixes=("https://mail.shop.example/c/",),
        )
    ]


def test_finds_http_links_in_order_and_leaves_the_rest() -> None:
    assert links() == [
        ("html", "https://shop.example/review?order=1001&utm_source=mail"),
        ("html", "https://shop.example/care"),
        ("html", "http://shop.example/faq"),
        ("html", "https://shop.example/x"),
        ("html", "https://shop.example/vml"),
        ("text", "https://shop.example/review?order=1001&utm_source=mail"),
        ("text", "https://shop.example/care"),
        ("text", "http://shop.example/faq"),
        ("text", "https://en.wikipedia.org/wiki/Coffee_(disambiguation)"),
    ]


def test_rewrites_only_the_urls_and_inserts_pixel_and_honeypot() -> None:
    found = find_links(HTML, TEXT, untouched={UNSUBSCRIBE})
    targets = [f"https://t.example/c/T{index}?a=1&b=2" for index in range(len(found))]
    html, text = rewrite(
        HTML,
        TEXT,
        found,
        targets,
        pixel_url="https://t.example/o/P",
        honeypot_url="https://t.example/c/H",
    )
    honeypot = HONEYPOT_HTML.format(url="https://t.example/c/H")
    pixel = PIXEL_HTML.format(url="https://t.example/o/P")
    expected = (
        HTML.replace('<BODY style="margin:0">', f'<BODY style="margin:0">{honeypot}')
        .replace(
            "https://shop.example/review?order=1001&amp;utm_source=mail",
            "https://t.example/c/T0?a=1&amp;b=2",
        )
        .replace("'https://shop.example/care'", "'https://t.example/c/T1?a=1&amp;b=2'")
        .replace("href=http://shop.example/faq>", "href=https://t.example/c/T2?a=1&amp;b=2>")
        .replace('" https://shop.example/x "', '"https://t.example/c/T3?a=1&amp;b=2"')
        .replace("https://shop.example/vml", "https://t.example/c/T4?a=1&amp;b=2")
        .replace("</BODY>", f"{pixel}</BODY>")
    )
    assert html == expected
    assert text == (
        TEXT.replace("https://shop.example/review?order=1001&utm_source=mail", targets[5])
        .replace("https://shop.example/care", targets[6])
        .replace("http://shop.example/faq", targets[7])
        .replace("https://en.wikipedia.org/wiki/Coffee_(disambiguation)", targets[8])
    )
    assert UNSUBSCRIBE in html and UNSUBSCRIBE in text


def test_without_links_only_pixel_and_honeypot_are_added() -> None:
    html, text = rewrite(
        "<p>Hi</p>", "Hi\n", [], [], pixel_url="https://t/o/P", honeypot_url="https://t/c/H"
    )
    # No body element: both go at the end, the HTML before them untouched.
    assert html.startswith("<p>Hi</p>") and html.endswith(PIXEL_HTML.format(url="https://t/o/P"))
    assert HONEYPOT_HTML.format(url="https://t/c/H") in html
    assert text == "Hi\n"
    same, _ = rewrite("<p>Hi</p>", "", [], [], pixel_url=None, honeypot_url=None)
    assert same == "<p>Hi</p>"


def test_our_own_links_are_not_wrapped_again() -> None:
    html = '<a href="https://t.example/c/ALREADY">x</a><a href="https://t.example/u/U">u</a>'
    assert (
        find_links(html, "", untouched_prefixes=("https://t.example/c/", "https://t.example/u/"))
        == []
    )


@pytest.mark.parametrize(
    ("href", "scheme"),
    [
        ("https://x.example/", "https"),
        (" HTTP://x.example/", "http"),
        ("javascript:alert(1)", "javascript"),
        ("java\nscript:alert(1)", "javascript"),
        ("\tJaVaScRiPt:alert(1)", "javascript"),
        ("data:text/html,hi", "data"),
        ("mailto:a@b.example", "mailto"),
        ("/relative", None),
        ("#top", None),
        ("", None),
    ],
)
def test_link_scheme_as_a_browser_reads_it(href: str, scheme: str | None) -> None:
    assert link_scheme(href) == scheme


def test_entities_in_hrefs_are_decoded() -> None:
    [href] = html_hrefs('<a href="&#106;avascript:alert(1)">x</a>')
    assert href.url == "javascript:alert(1)"


# --- the template check -------------------------------------------------------------------


def write_template(root: Path, name: str, body: str) -> None:
    folder = root / name / "en"
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text("Hi")
    (folder / "body.html").write_text(body)


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:void(0)",
        "java&#10;script:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "/account",
        "",
    ],
)
def test_rules_check_refuses_links_other_than_http(tmp_path: Path, href: str) -> None:
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    rules.mkdir()
    write_template(
        templates, "good", '<a href="https://shop.example/">x</a><a href="mailto:a@b.c">m</a>'
    )
    write_template(
        templates, "bad", f'<p><a href="https://shop.example/">ok</a><a href="{href}">x</a></p>'
    )
    (rules / "shop.yaml").write_text(
        "rules:\n"
        "  - id: fine\n"
        "    when: {event: order.created}\n"
        "    template: good\n"
        "  - id: unsafe\n"
        "    when: {event: order.created}\n"
        "    template: bad\n"
    )
    [error] = check_rules(rules, templates_dir=templates, default_locale="en")
    assert (error.line, error.column) == (7, 15)
    assert "template 'bad' (en) has a link to" in error.message
    assert "must be absolute http:// or https:// URLs" in error.message
