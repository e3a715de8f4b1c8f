"""The page behind a survey link: thanks, in the customer's language, with a comment box.

Plain HTML with a form, so it works without JavaScript (our pages run none: see
app/ops/security.py). Autoescaped: the comment comes back into the page when it is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import jinja2

from app.mail.languages import pick_language
from app.survey.links import survey_texts
from app.survey.scales import SurveyKind, scale_of
from app.survey.service import MAX_COMMENT, CommentProblem

Page = Literal["choose", "thanks", "commented", "invalid"]

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "thanks_title": "Thank you!",
        "thanks_text": "Your answer: {score} out of {high}.",
        "commented_title": "Thank you for your comment!",
        "commented_text": "We read every comment.",
        "invalid_title": "Link not valid",
        "invalid_text": "This survey link is not valid. Please use the link from the email.",
        "label": "Anything you would like to tell us? (optional)",
        "button": "Send",
        "sample": "This is a preview: nothing was recorded.",
        "empty": "Please write a comment first.",
        "too_long": "A comment can be at most {limit} characters.",
    },
    "ru": {
        "thanks_title": "Спасибо!",
        "thanks_text": "Ваша оценка: {score} из {high}.",
        "commented_title": "Спасибо за отзыв!",
        "commented_text": "Мы читаем каждый отзыв.",
        "invalid_title": "Ссылка недействительна",
        "invalid_text": "Эта ссылка на опрос недействительна. Откройте ссылку из письма.",
        "label": "Хотите что-нибудь добавить? (необязательно)",
        "button": "Отправить",
        "sample": "Это предпросмотр: ничего не записано.",
        "empty": "Сначала напишите комментарий.",
        "too_long": "Комментарий может быть не длиннее {limit} символов.",
    },
}
_LIMITS = {"en": f"{MAX_COMMENT:,}", "ru": f"{MAX_COMMENT:,}".replace(",", "\u00a0")}

_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_PAGE = _env.from_string(
    """<!DOCTYPE html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{ title }}</title>
<style>
  body { margin: 0; padding: 48px 16px; background: #f4f4f5; color: #27272a;
         font: 16px/1.5 Arial, Helvetica, sans-serif; }
  main { max-width: 480px; margin: 0 auto; padding: 32px; background: #fff;
         border-radius: 8px; }
  h1 { margin: 0 0 16px; font-size: 22px; line-height: 1.3; color: #18181b; }
  p { margin: 0 0 16px; }
  label { display: block; margin: 0 0 8px; }
  textarea { box-sizing: border-box; width: 100%; min-height: 120px; padding: 8px;
             border: 1px solid #d4d4d8; border-radius: 6px; font: inherit; }
  .error { color: #b91c1c; }
  .note { color: #71717a; font-size: 14px; }
  ol.scale { display: grid; grid-template-columns: repeat(auto-fit, minmax(44px, 1fr));
             gap: 6px; margin: 0 0 8px; padding: 0; list-style: none; }
  ol.scale a { display: flex; align-items: center; justify-content: center; min-height: 48px;
               border-radius: 6px; background: #18181b; color: #fff; font-weight: bold;
               text-decoration: none; }
  ol.scale a:focus-visible { outline: 3px solid #0072b2; outline-offset: 2px; }
  .ends { display: flex; justify-content: space-between; gap: 16px; color: #52525b;
          font-size: 14px; }
  button { margin-top: 12px; padding: 10px 20px; border: 0; border-radius: 6px;
           background: #18181b; color: #fff; font: inherit; cursor: pointer; }
</style>
</head>
<body>
<main>
<h1>{{ title }}</h1>
{% if text %}<p>{{ text }}</p>{% endif %}
{% if choices %}
<ol class="scale">
{%- for score, link in choices %}<li><a href="{{ link }}">{{ score }}</a></li>{% endfor -%}
</ol>
<p class="ends"><span>{{ low }}</span><span>{{ high }}</span></p>
{% endif %}
{% if form %}
<form method="post" action="comment">
<label for="comment">{{ label }}</label>
{% if error %}<p class="error" id="comment-error">{{ error }}</p>{% endif %}
<textarea id="comment" name="comment" maxlength="{{ limit }}"
{%- if error %} aria-describedby="comment-error"{% endif %}>{{ comment }}</textarea>
<button type="submit">{{ button }}</button>
</form>
{% endif %}
{% if sample %}<p class="note">{{ sample_note }}</p>{% endif %}
</main>
</body>
</html>
"""
)


def page_language(*tags: str | None) -> str:
    """The first of `tags` (locales, language tags) we have pages for; English otherwise."""
    return pick_language(_TEXTS, *tags)


def render_page(
    page: Page,
    *,
    language: str,
    score: int | None = None,
    problem: CommentProblem | None = None,
    comment: str = "",
    sample: bool = False,
    token: str = "",
    kind: str = SurveyKind.NPS,
    question: Mapping[str, str] | None = None,
) -> str:
    """`choose` (every answer of `token`'s `kind` of survey, for mail that links here),
    `thanks` after an answer (or a refused comment, with `problem`), `commented` after a
    stored comment, `invalid` for a link that names no message. `question` (question, low,
    high) replaces the kind's own: a product review asks about the product (app/reviews)."""
    language = language if language in _TEXTS else "en"
    texts = _TEXTS[language]
    scale = scale_of(kind)
    choices: list[tuple[int, str]] = []
    ends = ("", "")
    if page == "choose":
        question = question or survey_texts(language, kind)
        # Relative to /s/{token}: each button is that token's answer link. Buttons of the
        # page's own (not the mail's table): they wrap on a phone and stay 44 px to tap.
        choices = [(score, f"{token}/{score}") for score in scale.scores]
        ends = (question["low"], question["high"])
        text = ""
    elif page == "thanks":
        text = (
            texts["thanks_text"].format(score=score, high=scale.high) if score is not None else ""
        )
    else:
        text = texts[f"{page}_text"]
    error = texts[problem].format(limit=_LIMITS[language]) if problem else ""
    return _PAGE.render(
        lang=language,
        title=(question or survey_texts(language, kind))["question"]
        if page == "choose"
        else texts[f"{page}_title"],
        text=text,
        choices=choices,
        low=ends[0],
        high=ends[1],
        form=page == "thanks",
        label=texts["label"],
        button=texts["button"],
        error=error,
        comment=comment,
        limit=MAX_COMMENT,
        sample=sample,
        sample_note=texts["sample"],
    )
