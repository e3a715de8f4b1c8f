"""Find the links of a rendered email and point them at the click redirect (pure, no I/O).

Only the URL inside each rewritten `href` changes, and the pixel and the honeypot are
inserted whole: every other byte of the HTML stays as the template rendered it, so layout
tricks (conditional comments, odd quoting) survive. The HTML is read with the standard
library's parser, which knows where comments, scripts and attribute values begin and end;
a regular expression over the raw text would rewrite an `href` inside a comment or another
attribute's value.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

Part = Literal["html", "text"]

# Elements whose href a reader follows; <link> and <base> are not links to click.
_LINK_TAGS = frozenset({"a", "area"})
# One attribute of a start tag, as HTML tokenizes it.
_ATTRIBUTE = re.compile(
    r"""(?P<name>[^\s/>"'=][^\s/>"'=]*)"""
    r"""(?:\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s>]+)))?"""
)
_TAG_NAME = re.compile(r"<[^\s/>]+")
# A tag inside an Outlook conditional comment (`<!--[if mso]> ... <![endif]-->`), where
# bulletproof buttons keep their VML link (`<v:roundrect href=...>`).
_COMMENT_TAG = re.compile(r"""<[A-Za-z][\w:.-]*(?:"[^"]*"|'[^']*'|[^'">])*>""")
# A URL in plain text; trailing punctuation belongs to the sentence, not the link.
_TEXT_URL = re.compile(r"""https?://[^\s<>"'\x00-\x1f\x7f]+""", re.IGNORECASE)
_TRAILING = ".,;:!?'\"*"
# Browsers drop ASCII tab and newlines anywhere in a URL, so "java\nscript:" is javascript:.
_URL_NOISE = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")

HONEYPOT_HTML = (
    '<a href="{url}" style="display:none;mso-hide:all;" aria-hidden="true" tabindex="-1"></a>'
)
PIXEL_HTML = (
    '<img src="{url}" width="1" height="1" alt="" '
    'style="display:block;width:1px;height:1px;border:0;">'
)


@dataclass(frozen=True)
class Href:
    """One href attribute value in an HTML document."""

    tag: str
    start: int  # span of the raw value (inside its quotes) in the document
    end: int
    url: str  # what a mail client follows: entities decoded, surrounding space stripped
    in_comment: bool


@dataclass(frozen=True)
class FoundLink:
    part: Part
    start: int
    end: int
    url: str


def link_scheme(url: str) -> str | None:
    """The lower-cased scheme a browser would see in `url`, or None for a relative URL."""
    match = _SCHEME.match(_URL_NOISE.sub("", url.strip(" \t\n\r\f\x00")))
    return match.group(1).lower() if match else None


def is_web_link(url: str) -> bool:
    return link_scheme(url) in ("http", "https")


class _HrefScanner(HTMLParser):
    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.document = document
        self.hrefs: list[Href] = []
        self.body_open_end: int | None = None
        self.body_close_start: int | None = None
        # The parser reports (line, column); these turn that into an offset in the document.
        self._line_starts = [0, *(match.end() for match in re.finditer("\n", document))]

    def scan(self) -> _HrefScanner:
        self.feed(self.document)
        self.close()
        return self

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or ""
        start = self._offset()
        if tag == "body" and self.body_open_end is None:
            self.body_open_end = start + len(raw)
        self._tag_hrefs(tag, raw, start, in_comment=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_close_start = self._offset()

    def handle_comment(self, data: str) -> None:
        if not data.lstrip().lower().startswith("[if"):
            return
        data_start = self._offset() + len("<!--")
        for match in _COMMENT_TAG.finditer(data):
            name = _TAG_NAME.match(match.group())
            tag = name.group()[1:].lower() if name else ""
            self._tag_hrefs(tag, match.group(), data_start + match.start(), in_comment=True)

    def _tag_hrefs(self, tag: str, raw: str, start: int, *, in_comment: bool) -> None:
        name = _TAG_NAME.match(raw)
        position = name.end() if name else 1
        for attribute in _ATTRIBUTE.finditer(raw, position):
            if attribute.group("name").lower() != "href":
                continue
            for group in ("dq", "sq", "bare"):
                if attribute.group(group) is not None:
                    value_start = start + attribute.start(group)
                    value_end = start + attribute.end(group)
                    value = attribute.group(group)
                    break
            else:  # a bare `href` with no value
                value_start = value_end = start + attribute.end()
                value = ""
            url = html_lib.unescape(value).strip(" \t\n\r\f")
            self.hrefs.append(Href(tag, value_start, value_end, url, in_comment))
            return  # HTML uses the first of duplicate attributes


def html_hrefs(document: str) -> list[Href]:
    """Every href in the document, in order, including those in Outlook conditional comments."""
    return _HrefScanner(document).scan().hrefs


def find_links(
    html: str,
    text: str,
    *,
    untouched: Collection[str] = (),
    untouched_prefixes: Sequence[str] = (),
) -> list[FoundLink]:
    """The http(s) links to track: HTML links in document order, then the text part's.

    `untouched` URLs (the unsubscribe link) and URLs under `untouched_prefixes` (our own
    endpoints) are left as they are, as is every link that is not http(s) (mailto:, tel:).
    """

    def tracked(url: str) -> bool:
        return (
            is_web_link(url)
            and url not in untouched
            and not any(url.startswith(prefix) for prefix in untouched_prefixes)
        )

    found = [
        FoundLink("html", href.start, href.end, href.url)
        for href in html_hrefs(html)
        if (href.tag in _LINK_TAGS or href.in_comment) and tracked(href.url)
    ]
    for match in _TEXT_URL.finditer(text):
        url = _trim_url(match.group())
        if tracked(url):
            found.append(FoundLink("text", match.start(), match.start() + len(url), url))
    return found


def rewrite(
    html: str,
    text: str,
    links: Sequence[FoundLink],
    targets: Sequence[str],
    *,
    pixel_url: str | None,
    honeypot_url: str | None,
) -> tuple[str, str]:
    """`html` and `text` with each of `links` pointing at its target, plus pixel and honeypot.

    The honeypot goes first in the body, where link scanners start; the pixel goes last.
    """
    if len(links) != len(targets):
        raise ValueError("one target per link")
    html_edits: list[tuple[int, int, str]] = []
    text_edits: list[tuple[int, int, str]] = []
    for link, target in zip(links, targets, strict=True):
        if link.part == "html":
            html_edits.append((link.start, link.end, html_lib.escape(target, quote=True)))
        else:
            text_edits.append((link.start, link.end, target))
    scanner = _HrefScanner(html).scan()
    end = _document_end(html)
    if honeypot_url is not None:
        where = scanner.body_open_end if scanner.body_open_end is not None else end
        html_edits.append((where, where, HONEYPOT_HTML.format(url=html_lib.escape(honeypot_url))))
    if pixel_url is not None:
        where = scanner.body_close_start if scanner.body_close_start is not None else end
        html_edits.append((where, where, PIXEL_HTML.format(url=html_lib.escape(pixel_url))))
    return _apply(html, html_edits), _apply(text, text_edits)


def _document_end(html: str) -> int:
    """Where to add to a document without a body element: before `</html>`, else the end."""
    closing = html.lower().rfind("</html")
    return closing if closing >= 0 else len(html)


def _apply(document: str, edits: list[tuple[int, int, str]]) -> str:
    # Right to left, so earlier offsets stay valid; inserts at one place keep their order.
    ordered = sorted(enumerate(edits), key=lambda item: (item[1][0], item[0]), reverse=True)
    for _, (start, end, replacement) in ordered:
        document = document[:start] + replacement + document[end:]
    return document


def _trim_url(url: str) -> str:
    while url and url[-1] in _TRAILING:
        url = url[:-1]
    # A closing bracket ends the URL unless the URL opened one: "(see https://x.example/a)".
    for opening, closing in ("()", "[]"):
        while url.endswith(closing) and url.count(closing) > url.count(opening):
            url = url[:-1]
            while url and url[-1] in _TRAILING:
                url = url[:-1]
    return url
