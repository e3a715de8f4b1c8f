"""Find the links of a rendered email and point them at the click redirect (pure, no I/O).

Only the URL inside each rewritten `href` changes, and the pixel and the honeypot are
inserted whole: every other byte of the HTML stays as the template rendered it, so layout
tricks (conditional comments, odd quoting) survive. The HTML is read as the standard
library's parser reads it (a faster tokenizer that follows it step by step, below), which
knows where comments, scripts and attribute values begin and end; a regular expression over
the raw text would rewrite an `href` inside a comment or another attribute's value.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
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


@dataclass(frozen=True)
class _Scan:
    hrefs: tuple[Href, ...]
    body_open_end: int | None
    body_close_start: int | None


# --- reading the HTML ----------------------------------------------------------------------
# A tokenizer that walks the document once and splits it exactly where the standard
# library's `html.parser.HTMLParser` (Python 3.11) does, quirks included: an unfinished
# construct becomes text up to the next `>`, `<!-->` does not close a comment, `</ a>` ends
# `a`, and so on. It is that parser's algorithm without the work this module does not need
# (text and attribute values are never decoded, most tags are never looked at in Python),
# which makes it about ten times faster; tests/tracking/test_rewrite.py checks that it
# finds exactly what HTMLParser finds. Patterns marked "as html.parser" are copies of its
# own: change them only together with that test.

# As html.parser's `locatestarttagend_tolerant` (with the name captured): how far a start
# tag reaches. Its attribute grammar is the one HTMLParser reads the attributes with, so
# a tag it ends at `>` or `/>` is always reported as a tag, never as text.
_TAG_ATTRIBUTES = (
    r"(?:[\s/]*"
    r"""(?:(?<=['"\s/])[^\s/>][^\s/=>]*"""
    r"""(?:\s*=+\s*(?:'[^']*'|"[^"]*"|(?!['"])[^>\s]*)\s*)?"""
    r"(?:\s|/(?!>))*"
    r")*"
    r")?\s*"
)
_START_TAG = re.compile(r"<([a-zA-Z][^\t\n\r\f />\x00]*)" + _TAG_ATTRIBUTES)
# As html.parser's `tagfind_tolerant` and `attrfind_tolerant`: the tag name and one attribute.
_TAG_NAME_THEN_SPACE = re.compile(r"([a-zA-Z][^\t\n\r\f />\x00]*)(?:\s|/(?!>))*")
_PARSER_ATTRIBUTE = re.compile(
    r"""((?<=['"\s/])[^\s/>][^\s/=>]*)(\s*=+\s*('[^']*'|"[^"]*"|(?!['"])[^>\s]*))?"""
    r"(?:\s|/(?!>))*"
)
# As html.parser's `endtagfind`, `commentclose` and _markupbase's declaration patterns.
_END_TAG = re.compile(r"</\s*([a-zA-Z][-.a-zA-Z0-9:_]*)\s*>")
_COMMENT_CLOSE = re.compile(r"--\s*>")
_DECLARATION_NAME = re.compile(r"[a-zA-Z][-_.a-zA-Z0-9]*\s*")
_MARKED_SECTION_CLOSE = re.compile(r"]\s*]\s*>")
_MS_MARKED_SECTION_CLOSE = re.compile(r"]\s*>")
_MARKED_SECTIONS = frozenset({"temp", "cdata", "ignore", "include", "rcdata"})
_MS_MARKED_SECTIONS = frozenset({"if", "else", "endif"})
# Where the raw text of <script> or <style> may end (as html.parser's `set_cdata_mode`).
_RAW_TEXT_END = {
    "script": re.compile(r"</\s*script\s*>", re.IGNORECASE),
    "style": re.compile(r"</\s*style\s*>", re.IGNORECASE),
}
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# After a start tag's attributes, these mean "not finished yet" to HTMLParser.
_UNFINISHED_AFTER_TAG = _ASCII_LETTERS | {"=", "/", ""}
# An href attribute can only be where these letters are (no character outside ASCII
# lower-cases to one of them).
_HREF_LETTERS = re.compile("href", re.IGNORECASE)


# A complete start tag (after its `<`) in the plain form nearly every tag has: a name, then
# attributes, each after ASCII space, with a quoted or a simple bare value or none, then
# `>` or `/>`; and no attribute named href. Where it matches, HTMLParser's tag grammar
# (_START_TAG) ends at the same `>`, and _first_href reads the same attributes (its
# _TAG_NAME and _ATTRIBUTE split such a tag as this pattern does), so it finds no href.
_PLAIN_START_TAG = (
    r"""[a-zA-Z][^\s/>"'=<\x00]*+"""
    r"""(?:[\t\n\r\f ]++(?![hH][rR][eE][fF](?![^\s/=>"'<]))"""
    r"""[^\s/>"'=<][^\s/=>"'<]*+"""
    r"""(?:[\t\n\r\f ]*+=[\t\n\r\f ]*+(?:"[^"]*+"|'[^']*+'|[^\s"'=<>`]++))?+"""
    r")*+[\t\n\r\f ]*+/?>"
)
# A run of markup that changes nothing this module records, read in one regular expression
# match: text; plain start tags without an href, other than body, script and style; end
# tags other than body; comments that are not conditional; declarations; processing
# instructions; a `<` that is text. Each alternative consumes exactly what HTMLParser
# would. The lookaheads may only send more to the careful path in _scan_document, never
# less (IGNORECASE also matches a few non-ASCII letters, which `str.lower()` keeps as they
# are).
_UNREMARKABLE = re.compile(
    r"(?:[^<]++"
    r"|<(?!(?i:body|script|style)[\t\n\r\f />\x00])"
    + _PLAIN_START_TAG
    + r"|</(?!\s*(?i:body))[^>]*+>"
    r"|<!--(?!\s*\[(?i:if))(?s:.)*?--\s*>"
    r"|<!(?!--|\[)[^>]*+>"
    r"|<\?[^>]*+>"
    r"|<(?![a-zA-Z/!?])(?=(?s:.))"
    r")*+"
)


def _scan_document(document: str) -> _Scan:
    """The hrefs and body offsets of `document`, split into tokens as HTMLParser splits it."""
    hrefs: list[Href] = []
    body_open_end: int | None = None
    body_close_start: int | None = None
    find = document.find
    skip = _UNREMARKABLE.match
    size = len(document)
    pos = 0
    while True:
        run = skip(document, pos)
        assert run is not None  # the pattern matches the empty string too
        pos = run.end()  # now at a `<`: the run takes all text
        if pos >= size - 1:  # a `<` at the very end is text
            break
        after = document[pos + 1]
        end = -1  # where the construct at `pos` ends; -1 while it is unfinished
        if after in _ASCII_LETTERS:
            tag_match = _START_TAG.match(document, pos)
            assert tag_match is not None  # it needs only `<` and a letter
            stop = tag_match.end()
            following = document[stop : stop + 1]
            if following == ">":
                end = stop + 1
            elif following == "/":
                end = stop + 2 if document.startswith("/>", stop) else -1
            elif following not in _UNFINISHED_AFTER_TAG:
                end = stop  # HTMLParser reports such a tag as text: see _start_tag_kind
            if end >= 0:
                tag = tag_match.group(1).lower()
                kind: str | None = "start"
                if following not in (">", "/") or tag in _RAW_TEXT_END:
                    kind = _start_tag_kind(document, pos, end)
                if kind is not None:
                    if tag == "body" and body_open_end is None:
                        body_open_end = end
                    if _HREF_LETTERS.search(document, pos, end):
                        href = _first_href(tag, document[pos:end], pos, in_comment=False)
                        if href is not None:
                            hrefs.append(href)
                    if kind == "start" and tag in _RAW_TEXT_END:
                        end = _raw_text_end(document, end, tag)
                        if end < 0:  # unclosed: the rest of the document is its text
                            break
        elif after == "/":
            end = _after(">", document, pos + 1)
            if end >= 0:
                name_match = _END_TAG.match(document, pos) or _TAG_NAME_THEN_SPACE.match(
                    document, pos + 2
                )
                # No name: `</>` or a bogus comment, which cannot hold a tag (no `>`).
                if name_match is not None and name_match.group(1).lower() == "body":
                    body_close_start = pos
        elif after == "!":
            if document.startswith("<!--", pos):
                close = _COMMENT_CLOSE.search(document, pos + 4)
                if close is not None:
                    hrefs.extend(_comment_hrefs(document[pos + 4 : close.start()], pos + 4))
                    end = close.end()
            elif document.startswith("<![", pos):
                end = _marked_section_end(document, pos)
            elif document[pos : pos + 9].lower() == "<!doctype":
                end = _after(">", document, pos + 9)
            else:  # a bogus comment: no `>` inside, so no tag either
                end = _after(">", document, pos + 2)
        elif after == "?":
            end = _after(">", document, pos + 2)
        else:
            end = pos + 1  # `<` and a character no markup starts with: text
        if end < 0:
            # HTMLParser reads an unfinished construct as text up to the next `>`.
            end = _after(">", document, pos + 1)
            if end < 0:
                end = find("<", pos + 1)
                if end < 0:
                    end = pos + 1
        pos = end
    return _Scan(tuple(hrefs), body_open_end, body_close_start)


def _after(character: str, document: str, start: int) -> int:
    """The offset just after the first `character` from `start` on, or -1 if there is none."""
    found = document.find(character, start)
    return found + 1 if found >= 0 else -1


def _start_tag_kind(document: str, start: int, end: int) -> str | None:
    """How HTMLParser reads the tag: as "start", "startend" (`<x/>`) or None (as text).

    Runs HTMLParser's own attribute loop, so it is kept for the few tags where the answer
    matters: script and style (only "start" opens raw text), and tags that stop short of `>`.
    """
    name = _TAG_NAME_THEN_SPACE.match(document, start + 1)
    assert name is not None  # the tag starts with `<` and a letter
    position = name.end()
    while position < end:
        attribute = _PARSER_ATTRIBUTE.match(document, position)
        if attribute is None:
            break
        position = attribute.end()
    rest = document[position:end].strip()
    if rest == ">":
        return "start"
    return "startend" if rest == "/>" else None


def _raw_text_end(document: str, start: int, tag: str) -> int:
    """Where the raw text of a <script> or <style> starting at `start` ends, or -1."""
    close = _RAW_TEXT_END[tag]
    while True:
        match = close.search(document, start)
        if match is None:
            return -1
        # IGNORECASE lets `</ſcript>` through; HTMLParser takes only the exact name.
        name = _END_TAG.match(document, match.start())
        if name is not None and name.group(1).lower() == tag:
            return match.end()
        start = match.end()


def _marked_section_end(document: str, start: int) -> int:
    """The end of `<![name ...]>` at `start`, or -1 while it is unfinished."""
    name_start = start + 3
    if name_start == len(document):
        return -1
    name = _DECLARATION_NAME.match(document, name_start)
    # HTMLParser refuses these two (with AssertionError); so do we, as a ValueError the
    # dispatcher records as a render error, and `rules check` reports, instead of a crash.
    if name is None:
        raise ValueError(f"HTML: expected name token at {document[start : start + 20]!r}")
    if name.end() == len(document):
        return -1
    keyword = name.group().strip().lower()
    if keyword in _MARKED_SECTIONS:
        close = _MARKED_SECTION_CLOSE.search(document, name_start)
    elif keyword in _MS_MARKED_SECTIONS:
        close = _MS_MARKED_SECTION_CLOSE.search(document, name_start)
    else:
        raise ValueError(
            f"HTML: unknown status keyword {document[name_start : name.end()]!r} in marked section"
        )
    return close.end() if close is not None else -1


def _comment_hrefs(data: str, data_start: int) -> list[Href]:
    """The hrefs of the tags in an Outlook conditional comment (`<!--[if mso]>...`)."""
    if not data.lstrip().lower().startswith("[if"):
        return []
    hrefs = []
    for match in _COMMENT_TAG.finditer(data):
        name = _TAG_NAME.match(match.group())
        tag = name.group()[1:].lower() if name else ""
        href = _first_href(tag, match.group(), data_start + match.start(), in_comment=True)
        if href is not None:
            hrefs.append(href)
    return hrefs


def _first_href(tag: str, raw: str, start: int, *, in_comment: bool) -> Href | None:
    """The href of the tag `raw` found at `start`: HTML uses the first of duplicates."""
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
        return Href(tag, value_start, value_end, url, in_comment)
    return None


@lru_cache(maxsize=32)
def _scan(document: str) -> _Scan:
    # The dispatcher finds a message's links, then rewrites the same HTML: parsing is the
    # costly part of both, so the second call reuses the first's result (a few concurrent
    # messages fit in the cache; each result is immutable).
    return _scan_document(document)


def html_hrefs(document: str) -> list[Href]:
    """Every href in the document, in order, including those in Outlook conditional comments."""
    return list(_scan(document).hrefs)


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
    scanner = _scan(html)
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
