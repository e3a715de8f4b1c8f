"""The HTML pages behind unsubscribe links, in the customer's language (English by default).

The template lives here rather than under templates/ so it ships inside the package and
shop template edits cannot break unsubscribing. Autoescaped: the address comes from a link.
"""

from __future__ import annotations

from typing import Literal

import jinja2

from app.mail.languages import pick_language

Page = Literal["confirm", "done", "invalid"]

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "confirm_title": "Unsubscribe",
        "confirm_text": "Stop all emails from {shop} to {email}?",
        "button": "Unsubscribe",
        "done_title": "You are unsubscribed",
        "done_text": "{shop} will not send any more emails to {email}.",
        "invalid_title": "Link not valid",
        "invalid_text": "This unsubscribe link is not valid. Please use the link from the email.",
    },
    "ru": {
        "confirm_title": "Отписка от рассылки",
        "confirm_text": "Больше не присылать письма от {shop} на адрес {email}?",
        "button": "Отписаться",
        "done_title": "Вы отписались",
        "done_text": "{shop} больше не будет присылать письма на адрес {email}.",
        "invalid_title": "Ссылка недействительна",
        "invalid_text": "Эта ссылка для отписки недействительна. Откройте ссылку из письма.",
    },
}

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
  button { padding: 10px 20px; border: 0; border-radius: 6px; background: #18181b;
           color: #fff; font: inherit; cursor: pointer; }
</style>
</head>
<body>
<main>
<h1>{{ title }}</h1>
<p>{{ text }}</p>
{% if form %}
<form method="post">
<input type="hidden" name="confirm" value="page">
<button type="submit">{{ button }}</button>
</form>
{% endif %}
</main>
</body>
</html>
"""
)


def page_language(*tags: str | None) -> str:
    """The first of `tags` (locales, language tags) we have pages for; English otherwise."""
    return pick_language(_TEXTS, *tags)


def render_page(page: Page, *, language: str, shop: str = "", email: str = "") -> str:
    texts = _TEXTS.get(language, _TEXTS["en"])
    return _PAGE.render(
        lang=language,
        title=texts[f"{page}_title"],
        text=texts[f"{page}_text"].format(shop=shop, email=email),
        button=texts["button"],
        form=page == "confirm",
    )
