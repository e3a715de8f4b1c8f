"""Link rewriting: only http(s) hrefs change, only their URL, and nothing else in the HTML."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.preview.lint import check_rules
from app.tracking.rewrite import (
    HONEYPOT_HTML,
    PIXEL_HTML,
    FoundLink,
    _Scan,
    _scan_document,
    find_links,
    html_hrefs,
    link_scheme,
    rewrite,
)
from tests.mail import sent_samples
from tests.mail.sent_samples import Sample, compose_sent, shipped_samples
from tests.tracking.html_reference import reference_scan

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


# --- the tokenizer reads HTML exactly as HTMLParser does -----------------------------------
# `_scan_document` is a hand-written tokenizer; tests/tracking/html_reference.py keeps the
# HTMLParser-based scanner it replaced. Both must give the same hrefs (tag, span, decoded
# URL, in a conditional comment or not) and the same body offsets on any input, malformed
# too, and fail where HTMLParser fails (it refuses some `<![...` with AssertionError; the
# tokenizer with a ValueError of the same text, which callers record as a render error).
# The reference is the installed Python's parser, which the tokenizer follows as of 3.11.7:
# Python's 2025 HTMLParser security fixes (in later patch releases) read unfinished markup
# at the end of a document differently, so after such an upgrade these tests say so.

ScanOutcome = _Scan | tuple[str, str]


def outcome(scan: Callable[[str], _Scan], document: str) -> ScanOutcome:
    try:
        return scan(document)
    except AssertionError as error:  # the reference
        return ("refused", str(error))
    except ValueError as error:  # the tokenizer
        return ("refused", str(error).removeprefix("HTML: "))


def assert_scans_alike(document: str) -> None:
    assert outcome(_scan_document, document) == outcome(reference_scan, document)


URLS = [
    "https://shop.example/review?order=1&amp;utm=mail",
    "&#106;avascript:alert(1)",
    " http://shop.example/x ",
    "",
    "a b",
    "x>y",
    "<b>",
    "href=z",
    "'",
    '"',
    "é/Привет",
    "/",
    "&#10;",
]
VALUES = (
    [form.format(url) for form in ("={}", '="{}"', "='{}'", ' = "{}"', "\n=\n{}") for url in URLS]
    + ["="]
    + [""] * 10
)  # often none: `<a\x0bhref>` is a tag named "a\x0bhref"
ATTRIBUTE_NAMES = ["href", "HREF", "hRef", "data-href", "title", "style", "x", "=", "\x00", "é"]
SPACES = [" ", "\n", "\t", "", "/", " /", "\x00", "\x0b", "\u2003", "  "]
# Every combination, drawn in one go: drawing each part separately makes the test slow.
ATTRIBUTES = st.sampled_from(
    [space + name + value for space in SPACES for name in ATTRIBUTE_NAMES for value in VALUES]
)
TAG_NAMES = [
    *("a", "A", "area", "link", "base", "body", "BODY", "script", "Script", "style", "STYLE"),
    *("v:roundrect", "p", "img", "td", "ſcript", "bodyx"),
]
START_TAGS = st.builds(
    lambda name, attributes, close: f"<{name}{''.join(attributes)}{close}",
    st.sampled_from(TAG_NAMES),
    st.lists(ATTRIBUTES, max_size=3),
    st.sampled_from([">", "/>", " />", " >", "", "\n>"]),
)
MARKUP = st.sampled_from(
    [
        "</a>", "</ a>", "</body>", "</BODY >", "</ body>", "</body foo>", "</script>",
        "</ SCRIPT>", "</style>", "</ſcript>", "</>", "</", "</a", "</ [x>",
        "<!--", "-->", "<!-->", "<!--->", "--!>", "-- >", "<!---->", "<!--[if mso]>",
        "<!--[if !mso]><!-->", "<!--<![endif]-->", "<![endif]-->", " [IF mso]>",
        "<!DOCTYPE html>", "<!doctype", "<!>", "<!x>", "<!-x>", "<?xml version=\"1.0\"?>",
        "<?", "<![CDATA[x<a href=y>]]>", "<![if mso]>", "<![endif]>", "<![", "<![foo]>",
        "<", ">", '"', "'", "=", "&", "&amp;", "&#106;", "\n", "\r\n", "\t", "\x00",
        " ", "é", "Привет", "\u2003", "<<", "< a>", "<1>", "<#",
    ]
)  # fmt: skip
TEXT_BITS = st.text(alphabet="<>/!-=\"' \nahrefbody[]", max_size=6)
DOCUMENTS = st.lists(st.one_of(START_TAGS, MARKUP, TEXT_BITS), max_size=30).map("".join)


@settings(max_examples=2000, deadline=None)
@given(DOCUMENTS)
@example("<a href=x<b>")
@example("<p><!-- x > <a href='https://shop.example/'>")  # an unclosed comment ends at `>`
@example("<script x=1/><a href=y></script><a href=z>")
@example("<script><a href=y></ſcript><a href=z>")
@example("<a \x00href=y><a\x00href=z>")
@example("<a\x00<a href=y>")  # a NUL after the name: `<a` is text, then a tag
@example("<a\x0bhref><a\u2003href=y>")  # only ASCII space ends a tag name
def test_the_tokenizer_reads_any_html_as_htmlparser_does(document: str) -> None:
    assert_scans_alike(document)


# The dispatcher's documents: each shipped template as rendered (what it scans first) and as
# sent (tracked: honeypot and pixel in place).
@pytest.mark.parametrize("sample", shipped_samples(), ids=lambda sample: sample.name)
def test_the_tokenizer_reads_every_shipped_template_as_htmlparser_does(
    sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[str] = []

    def recording_find_links(html: str, text: str, **options: Any) -> list[FoundLink]:
        rendered.append(html)
        return find_links(html, text, **options)

    monkeypatch.setattr(sent_samples, "find_links", recording_find_links)
    sent = compose_sent(sample, now=datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    assert len(rendered) == (1 if sample.rule.track else 0)
    for document in [*rendered, sent.html]:
        found = _scan_document(document)
        assert found == reference_scan(document)
        assert found.body_open_end is not None and found.body_close_start is not None


@pytest.mark.parametrize(
    "document",
    [
        HTML,
        "<p>Hi</p>",
        "",
        "<",
        '<a href="https://t.example/c/ALREADY">x</a><a href="https://t.example/u/U">u</a>',
        '<a href="&#106;avascript:alert(1)">x</a>',
        '<p><a href="https://shop.example/">ok</a><a href="java&#10;script:alert(1)">x</a></p>',
    ],
)
def test_the_tokenizer_reads_this_modules_examples_as_htmlparser_does(document: str) -> None:
    assert_scans_alike(document)


def test_the_scan_finds_what_a_reader_sees() -> None:
    # Not only alike: right. The body, the first href of each tag, the VML link in the
    # conditional comment; nothing from the other comment, the script or an attribute value.
    scan = _scan_document(HTML)
    assert [(href.tag, href.url, href.in_comment) for href in scan.hrefs] == [
        ("link", "https://fonts.example/css", False),
        ("a", "https://shop.example/review?order=1001&utm_source=mail", False),
        ("a", "https://shop.example/care", False),
        ("a", "http://shop.example/faq", False),
        ("a", "https://shop.example/x", False),
        ("a", "mailto:help@shop.example", False),
        ("a", "tel:+491234", False),
        ("a", "#top", False),
        ("v:roundrect", "https://shop.example/vml", True),
        ("a", UNSUBSCRIBE, False),
    ]
    for href in scan.hrefs:
        assert html_unescaped(HTML[href.start : href.end]).strip() == href.url
    assert HTML[: scan.body_open_end].endswith('<BODY style="margin:0">')
    assert HTML[scan.body_close_start :].startswith("</BODY>")


def html_unescaped(value: str) -> str:
    return value.replace("&amp;", "&")


def test_rules_check_reports_html_the_tokenizer_refuses(tmp_path: Path) -> None:
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    rules.mkdir()
    write_template(templates, "odd", '<p><![foo[ x ]]><a href="https://shop.example/">x</a></p>')
    (rules / "shop.yaml").write_text(
        "rules:\n  - id: odd\n    when: {event: order.created}\n    template: odd\n"
    )
    [error] = check_rules(rules, templates_dir=templates, default_locale="en")
    assert "template 'odd' (en) does not render" in error.message
    assert "HTML cannot be read" in error.message
    assert "unknown status keyword 'foo'" in error.message
