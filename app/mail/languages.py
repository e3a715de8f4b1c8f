"""Which of our languages a page is shown in: from a customer's locale or a browser's list.

Shared by the pages behind mail links (unsubscribe, survey), which carry their own texts.
"""

from __future__ import annotations

import re
from collections.abc import Collection


def pick_language(available: Collection[str], *tags: str | None) -> str:
    """The first of `tags` (locales, language tags) in `available`; English otherwise.

    "ru-RU" and "ru_RU" count as "ru".
    """
    for tag in tags:
        language = re.split(r"[-_]", (tag or "").strip(), maxsplit=1)[0].lower()
        if language in available:
            return language
    return "en"


def accepted_languages(header: str) -> list[str]:
    """The tags of an Accept-Language header, in the browser's order of preference."""
    return [part.split(";")[0] for part in header.split(",")]
