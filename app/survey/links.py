"""`{{ survey.links }}` and `{{ survey.urls }}` in mail templates (pure, no I/O).

`survey.links` is one value that prints in the form of the part it is printed in: Jinja
asks an autoescaped template (body.html) for `__html__`, which gives the row of buttons
(eleven for NPS, five for CSAT, seven for CES: the rule's `survey.kind`), and a plain
template (body.txt) for `str()`, which gives "score: URL" lines. Both are in the language
of the template being rendered (English or Russian), so a customer whose locale falls
back to the default template also gets the default language here.
`survey.urls` ([{score, url}]) is for marketers who lay the links out themselves, and
`survey.url` one link to a page with all the answers, for a compact text part.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.mail.templates import rendering_language
from app.rules.model import Rule
from app.survey.nps import SCORES
from app.survey.scales import SurveyKind, scale_of
from app.survey.tokens import make_survey_token, sample_token

# The question and the ends of its scale, per survey kind (app/survey/scales.py) and language.
KIND_TEXTS: dict[str, dict[str, dict[str, str]]] = {
    "nps": {
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
    },
    "csat": {
        "en": {
            "question": "How satisfied are you with your order?",
            "low": "Very dissatisfied",
            "high": "Very satisfied",
            "scale": "1 = very dissatisfied, 5 = very satisfied",
        },
        "ru": {
            "question": "Насколько вы довольны заказом?",
            "low": "Совсем не доволен",
            "high": "Очень доволен",
            "scale": "1 — совсем не доволен, 5 — очень доволен",
        },
    },
    "ces": {
        "en": {
            "question": "How easy was it to get what you needed from us?",
            "low": "Very difficult",
            "high": "Very easy",
            "scale": "1 = very difficult, 7 = very easy",
        },
        "ru": {
            "question": "Насколько легко было получить от нас то, что вам было нужно?",
            "low": "Очень трудно",
            "high": "Очень легко",
            "scale": "1 — очень трудно, 7 — очень легко",
        },
    },
}
TEXTS = KIND_TEXTS["nps"]  # NPS, as before the other kinds
_FONT = "font-family:Arial, Helvetica, sans-serif;"
# Inline styles only, so nothing depends on <style> surviving; eleven equal cells of a
# fixed-layout table fit a 375 px phone (about 29 px each) as well as the 600 px layout.
_BUTTON = (
    "display:block; padding:8px 0; border:1px solid #d4d4d8; border-radius:4px; "
    f"background-color:#f4f4f5; color:#18181b; {_FONT} font-size:15px; line-height:18px; "
    "font-weight:bold; text-align:center; text-decoration:none;"
)
_LABEL = f"padding:6px 1px 0; {_FONT} font-size:12px; line-height:1.4; color:#71717a;"


def survey_texts(language: str | None, kind: str = SurveyKind.NPS) -> dict[str, str]:
    texts = KIND_TEXTS[kind]
    return texts.get(language or "en", texts["en"])


@dataclass(frozen=True)
class SurveyLinks:
    """The answer links of one message, one per score of its kind's scale, in order."""

    urls: tuple[str, ...]
    kind: str = SurveyKind.NPS

    @property
    def scores(self) -> tuple[int, ...]:
        return scale_of(self.kind).scores

    def __html__(self) -> str:
        return survey_html(self.urls, survey_texts(rendering_language(), self.kind), self.scores)

    def __str__(self) -> str:
        return survey_text(self.urls, survey_texts(rendering_language(), self.kind), self.scores)


def survey_html(
    urls: tuple[str, ...], texts: dict[str, str], scores: Sequence[int] = SCORES
) -> str:
    # Equal cells: eleven NPS buttons of 9% each, five CSAT ones of 20%, seven CES of 14%.
    width = f"{100 // len(urls)}%"
    cells = "".join(
        f'<td align="center" width="{width}" style="width:{width}; padding:0 1px;">'
        f'<a href="{html.escape(url)}" style="{_BUTTON}">{score}</a></td>'
        for score, url in zip(scores, urls, strict=True)
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


def survey_text(
    urls: tuple[str, ...], texts: dict[str, str], scores: Sequence[int] = SCORES
) -> str:
    lines = [f"{texts['question']} ({texts['scale']})"]
    lines.extend(f"{score}: {url}" for score, url in zip(scores, urls, strict=True))
    return "\n".join(lines)


def survey_urls(*, public_url: str, token: str, kind: str = SurveyKind.NPS) -> tuple[str, ...]:
    base = public_url.rstrip("/")
    return tuple(f"{base}/s/{token}/{score}" for score in scale_of(kind).scores)


def survey_context(*, public_url: str, token: str, kind: str = SurveyKind.NPS) -> dict[str, Any]:
    """The template's `survey`: `links` (prints itself), `urls` ([{score, url}]), `url`
    (one link to a page with every answer, for a compact text part), and `kind`."""
    urls = survey_urls(public_url=public_url, token=token, kind=kind)
    scores = scale_of(kind).scores
    return {
        "links": SurveyLinks(urls, kind),
        "url": f"{public_url.rstrip('/')}/s/{token}",
        "urls": [{"score": score, "url": url} for score, url in zip(scores, urls, strict=True)],
        "kind": str(kind),
    }


def sample_survey_context(public_url: str, kind: str = SurveyKind.NPS) -> dict[str, Any]:
    """Links for previews and test sends: they show the thank-you page and record nothing."""
    return survey_context(public_url=public_url, token=sample_token(kind), kind=kind)


def message_survey_context(
    *,
    message_id: int,
    public_url: str,
    secrets: Sequence[str],
    now: datetime,
    kind: str = SurveyKind.NPS,
) -> dict[str, Any]:
    """The `survey` of one message as the dispatcher sends it: links signed for it and for
    its rule's survey kind (`survey_kind(rule)`)."""
    token = make_survey_token(message_id=message_id, issued_at=now, secrets=secrets, kind=kind)
    return survey_context(public_url=public_url, token=token, kind=kind)


def survey_kind(rule: Rule | None) -> str:
    """The survey kind of a rule's mail: its `survey.kind`, else NPS (as before kinds)."""
    if rule is None or rule.survey is None:
        return SurveyKind.NPS.value
    return rule.survey.kind
