"""The href scanner as it was before the hand-written tokenizer: the reference it must equal.

`_HrefScanner` is the former `app.tracking.rewrite._HrefScanner`, unchanged: the standard
library's HTMLParser finds the tags, comments and end tags, and regular expressions read the
href of each. The fast scanner in `app.tracking.rewrite` is tested to give exactly its
results, on well-formed and malformed HTML alike (see test_rewrite.py).
"""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser

from app.tracking.rewrite import Href, _Scan

_ATTRIBUTE = re.compile(
    r"""(?P<name>[^\s/>"'=][^\s/>"'=]*)"""
    r"""(?:\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s>]+)))?"""
)
_TAG_NAME = re.compile(r"<[^\s/>]+")
_COMMENT_TAG = re.compile(r"""<[A-Za-z][\w:.-]*(?:"[^"]*"|'[^']*'|[^'">])*>""")


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


def reference_scan(document: str) -> _Scan:
    scanner = _HrefScanner(document).scan()
    return _Scan(tuple(scanner.hrefs), scanner.body_open_end, scanner.body_close_start)
