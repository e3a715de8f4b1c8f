"""Plain-text alternative derived from an email's HTML, for templates without body.txt.

Mail clients that show the text part (and spam filters that compare the two parts)
expect the same content, so this keeps words, paragraph breaks and link targets and
drops everything that is only presentation.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Content of these elements is never shown to the reader.
_HIDDEN = frozenset({"head", "style", "script", "title", "template", "noscript"})
# Elements that start a new paragraph (blank line before and after).
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "pre", "hr"}
)
# Elements that start a new line.
_LINES = frozenset({"br", "div", "tr", "li", "section", "article", "header", "footer"})

# HTML collapses ASCII whitespace only; a no-break space (e.g. in "1 234,00 ₽") must stay.
_SPACES = re.compile(r"[ \t\n\r\f\v]+")
# Breaks are recorded as markers and resolved at the end, so "</li><li>" or
# "</div><div>" give one line break, not two, and a paragraph wins over a line.
_LINE = "\x00"
_PARAGRAPH = "\x01"
_BR = "\x02"  # these do add up: <br><br> is a blank line
_MARKERS = (_LINE, _PARAGRAPH, _BR)
_BREAKS = re.compile(r"[ \x00-\x02]*[\x00-\x02][ \x00-\x02]*")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0
        # (href, index into parts where the link text starts), innermost last.
        self._links: list[tuple[str, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden_depth += 1
            return
        if self._hidden_depth:
            return
        if tag in _PARAGRAPHS:
            self.parts.append(_PARAGRAPH)
        elif tag == "br":
            self.parts.append(_BR)
        elif tag in _LINES:
            self.parts.append(_LINE)
            if tag == "li":
                self.parts.append("- ")
        elif tag in ("td", "th"):
            # Cells of one row stay on one line, separated like words.
            self.parts.append(" ")
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self._links.append((href.strip(), len(self.parts)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/> and <hr/> have no end tag; treat them as the start tag alone.
        self.handle_starttag(tag, attrs)
        if tag in _HIDDEN:
            self._hidden_depth -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden_depth = max(0, self._hidden_depth - 1)
            return
        if self._hidden_depth:
            return
        if tag in _PARAGRAPHS:
            self.parts.append(_PARAGRAPH)
        elif tag in _LINES and tag != "br":
            self.parts.append(_LINE)
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            self.parts.append(_link_suffix(href, "".join(self.parts[start:])))

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            for marker in _MARKERS:
                data = data.replace(marker, "")
            self.parts.append(_SPACES.sub(" ", data))


def _link_suffix(href: str, text: str) -> str:
    """The " (url)" after a link's text, unless the URL adds nothing the text says."""
    target = href.removeprefix("mailto:")
    if not href or href.startswith("#") or target in text:
        return ""
    return f" ({target})"


def html_to_text(html: str) -> str:
    """Readable plain text for `html`: paragraphs, list items, "text (url)" links."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = _SPACES.sub(" ", "".join(parser.parts))
    text = _BREAKS.sub(_resolve_breaks, text)
    return text.strip(" \n")


def _resolve_breaks(run: re.Match[str]) -> str:
    markers = run.group()
    return "\n\n" if _PARAGRAPH in markers or markers.count(_BR) > 1 else "\n"
