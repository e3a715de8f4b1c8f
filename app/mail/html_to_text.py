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
_LINE_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_RUNS = re.compile(r"\n{3,}")


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
            self.parts.append("\n\n")
        elif tag in _LINES:
            self.parts.append("\n")
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
            self.parts.append("\n\n")
        elif tag in _LINES and tag != "br":
            self.parts.append("\n")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            self.parts.append(_link_suffix(href, "".join(self.parts[start:])))

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
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
    lines = [_LINE_SPACES.sub(" ", line).strip(" ") for line in "".join(parser.parts).split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
