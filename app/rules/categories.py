"""Category paths as rules compare them. Pure.

A shop names its categories in many ways: Shopify's product taxonomy by full name
(`Baby & Toddler > Diapering > Diapers`), WooCommerce by slugs (`kinderzimmer`, percent-encoded
for non-Latin names), our JSON and older Shopify shops by `product_type` paths such as
`Baby/Diapers`. Rules write `items.category` values the same ways. Both sides are brought to
one form before they are compared:

- `>` and `/` separate segments (spaces around them do not count);
- a segment is case-folded, percent-decoded, stripped of accents, and every run of what is not
  a letter or digit becomes one `-`: `Baby & Toddler` -> `baby-toddler`, `Größe` -> `grosse`,
  `%d0%ba%d0%be%d1%84%d0%b5` -> `кофе`;
- empty segments are dropped.

So `Baby & Toddler > Diapering > Diapers` is `baby-toddler/diapering/diapers`. A value matches
a path when it is the path or a prefix of whole segments of it, from the root: `baby-toddler`
and `Baby & Toddler > Diapering` match it, `baby/diapers` and `diapers` do not (a rule says
where in the shop's tree it looks; it never guesses).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from urllib.parse import unquote

_SEPARATOR = re.compile(r">|/")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_NOT_WORD = re.compile(r"[\W_]+")


@lru_cache(maxsize=1 << 14)
def category_path(value: str) -> str:
    """The compared form of a category written as a path (`Baby & Toddler > Diapering`,
    `baby/diapers`); empty when nothing of it is a letter or digit."""
    segments = (_segment(part) for part in _SEPARATOR.split(value))
    return "/".join(segment for segment in segments if segment)


def path_of(segments: Sequence[str]) -> str:
    """The compared form of a path given as its segments (the catalog's `category_paths`)."""
    return category_path(" > ".join(segments))


def _segment(text: str) -> str:
    if _PERCENT.search(text):
        text = unquote(text)  # WooCommerce's slugs of non-Latin names
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(char for char in folded if not unicodedata.combining(char))
    return _NOT_WORD.sub("-", plain).strip("-")


def under(path: str, prefixes: Iterable[str]) -> bool:
    """Whether `path` is one of `prefixes` or lies below one (both in the compared form)."""
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def same_need(a: str, b: str) -> bool:
    """One path lies within the other: `coffee/beans` and `coffee` are the same need."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def label(value: str) -> str:
    """A product type or vendor as compared: case-folded, spaces collapsed."""
    return " ".join(value.casefold().split())
