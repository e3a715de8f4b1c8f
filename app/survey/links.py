"""`{{ survey.links }}` and `{{ survey.urls }}` in mail templates (pure, no I/O).

`survey.links` is one value that prints in the form of the part it is printed in: Jinja
asks an autoescaped template (body.html) for `__html__`, which gives the row of eleven
buttons, and a plain template (body.txt) for `str()`, which gives "score: URL" lines. Both
are in the language of the template being rendered (English or Russian), so a customer
whose locale falls back to the default template also gets the default language here.
`survey.urls` ([{score, url}]) is for marketers who lay the links out themselves, and
`survey.url` one link to a page with the eleven answers, for a compact text part.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.mail.templates import rendering_language
from app.survey.nps import SCORES
from app.survey.tokens import SAMPLE_TOKEN, make_survey_token

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "question": "How likely are you to recommend us to a friend?",
        "low": "Not likely",
        "high": "Very likely",
        "scale": "0 = not likely, 10 = very likely",
    },
    "ru": {
        "question": "Насколько вероятно, что вы порекомендуете нас друзьям?",
        "low": "Маловероятно",
        "high": "Очень вероятно",
        "scale": "0 — маловероятно, 10 — очень вероятно",
    },
}
_FONT = "font-family:Arial, Helvetica, sans-serif;"
# Inline styles only, so nothing depends on <style> surviving; eleven equal cells of a
# fixed-layout table fit a 375 px phone (about 29 px each) as well as the 600 px layout.
_BUTTON = (
    "display:block; padding:8px 0; border:1px solid #d4d4d8; border-radius:4px; "
    f"background-color:#f4f4f5; color:#18181b; {_FONT} font-size:15px; line-height:18px; "
    "font-weight:bold; text-align:center; text-decoration:none;"
)
_LABEL = f"padding:6px 1px 0; {_FONT} font-size:12px; line-height:1.4; color:#71717a;"


def survey_texts(language: str | None) -> dict[str, str]:
    return TEXTS.get(language or "en", TEXTS["en"])


@dataclass(frozen=True)
class SurveyLinks:
    """The eleven answer links of one message (index = score)."""

    urls: tuple[str, ...]

    def __html__(self) -> str:
        return survey_html(self.urls, survey_texts(rendering_language()))

    def __str__(self) -> str:
        return survey_text(self.urls, survey_texts(rendering_language()))


def survey_html(urls: tuple[str, ...], texts: dict[str, str]) -> str:
    cells = "".join(
        f'<td align="center" width="9%" style="width:9%; padding:0 1px;">'
        f'<a href="{html.escape(url)}" style="{_BUTTON}">{score}</a></td>'
        for score, url in enumerate(urls)
    )
    table = (
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        'style="width:100%; table-layout:fixed;'
    )
    question = (
        f'<tr><td style="padding:0 0 10px; {_FONT} font-size:16px; line-height:1.4; '
        f'font-weight:bold; color:#18181b;">{html.escape(texts["question"])}</td></tr>\n'
        if texts["question"]
        else ""  # the choice page shows it as its heading
    )
    return (
        f'{table} margin:0 0 16px;">\n'
        f"{question}"
        f'<tr><td>{table}"><tr>{cells}</tr></table></td></tr>\n'
        f'<tr><td>{table}"><tr>'
        f'<td align="left" style="{_LABEL} text-align:left;">{html.escape(texts["low"])}</td>'
        f'<td align="right" style="{_LABEL} text-align:right;">{html.escape(texts["high"])}</td>'
        "</tr></table></td></tr>\n</table>"
    )


def survey_text(urls: tuple[str, ...], texts: dict[str, str]) -> str:
    lines = [f"{texts['question']} ({texts['scale']})"]
    lines.extend(f"{score}: {url}" for score, url in enumerate(urls))
    return "\n".join(lines)


def survey_urls(*, public_url: str, token: str) -> tuple[str, ...]:
    base = public_url.rstrip("/")
    return tuple(f"{base}/s/{token}/{score}" for score in SCORES)


def survey_context(*, public_url: str, token: str) -> dict[str, Any]:
    """The template's `survey`: `links` (prints itself), `urls` ([{score, url}]) and `url`
    (one link to a page with the eleven answers, for a compact text part)."""
    urls = survey_urls(public_url=public_url, token=token)
    return {
        "links": SurveyLinks(urls),
        "url": f"{public_url.rstrip('/')}/s/{token}",
        "urls": [{"score": score, "url": url} for score, url in enumerate(urls)],
    }


def sample_survey_context(public_url: str) -> dict[str, Any]:
    """Links for previews and test sends: they show the thank-you page and record nothing."""
    return survey_context(public_url=public_url, token=SAMPLE_TOKEN)


def message_survey_context(
    *, message_id: int, public_url: str, secrets: Sequence[str], now: datetime
) -> dict[str, Any]:
    """The `survey` of one message as the dispatcher sends it: links signed for it."""
    token = make_survey_token(message_id=message_id, issued_at=now, secrets=secrets)
    return survey_context(public_url=public_url, token=token)
