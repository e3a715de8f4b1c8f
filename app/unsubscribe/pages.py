"""The HTML pages behind unsubscribe links, in the customer's language (English by default).

The template lives here rather than under templates/ so it ships inside the package and
shop template edits cannot break unsubscribing. Autoescaped: the address comes from a link.
"""

from __future__ import annotations

from typing import Literal

import jinja2

from app.mail.languages import pick_language

Page = Literal[
    "confirm", "unsubscribed", "resubscribed", "stopped_all", "gone", "invalid", "forbidden"
]

# The forms each page offers: (action posted, text key of its button).
_FORMS: dict[str, list[tuple[str, str]]] = {
    "confirm": [("unsubscribe", "unsubscribe_button")],
    "unsubscribed": [("resubscribe", "undo_button"), ("stop_all", "stop_all_button")],
    "resubscribed": [("unsubscribe", "unsubscribe_button")],
    "stopped_all": [("undo_stop_all", "undo_stop_all_button")],
}

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "confirm_title": "Unsubscribe",
        "confirm_text": "Stop marketing emails from {shop} to {email}? Emails about your "
        "orders (confirmations, delivery) will still come.",
        "unsubscribed_title": "You are unsubscribed",
        "unsubscribed_text": "{shop} will send no more marketing emails to {email}. Emails "
        "about your orders will still come.",
        "resubscribed_title": "You are subscribed again",
        "resubscribed_text": "{shop} may send marketing emails to {email} again.",
        "stopped_all_title": "No more emails",
        "stopped_all_text": "{shop} will not send any more emails to {email}, not even "
        "about your orders.",
        "gone_title": "Nothing to unsubscribe",
        "gone_text": "We hold no address for this link any more: no emails will be sent.",
        "invalid_title": "Link not valid",
        "invalid_text": "This unsubscribe link is not valid. Please use the link from the email.",
        "forbidden_title": "Not allowed",
        "forbidden_text": "This form can only be sent from its own page. Please open the "
        "link from the email again.",
        "unsubscribe_button": "Unsubscribe",
        "undo_button": "Undo: keep getting offers",
        "stop_all_button": "Stop all emails from {shop}",
        "undo_stop_all_button": "Undo",
    },
    "ru": {
        "confirm_title": "Отписка от рассылки",
        "confirm_text": "Больше не присылать рекламные письма от {shop} на адрес {email}? "
        "Письма о ваших заказах (подтверждения, доставка) будут приходить.",
        "unsubscribed_title": "Вы отписались",
        "unsubscribed_text": "{shop} больше не будет присылать рекламные письма на адрес "
        "{email}. Письма о ваших заказах будут приходить.",
        "resubscribed_title": "Вы снова подписаны",
        "resubscribed_text": "{shop} снова может присылать рекламные письма на адрес {email}.",
        "stopped_all_title": "Писем больше не будет",
        "stopped_all_text": "{shop} больше не будет присылать никаких писем на адрес "
        "{email}, даже о ваших заказах.",
        "gone_title": "Отписываться не от чего",
        "gone_text": "У нас больше нет адреса для этой ссылки: писем не будет.",
        "invalid_title": "Ссылка недействительна",
        "invalid_text": "Эта ссылка для отписки недействительна. Откройте ссылку из письма.",
        "forbidden_title": "Действие недоступно",
        "forbidden_text": "Эту форму можно отправить только с её страницы. Откройте ссылку "
        "из письма ещё раз.",
        "unsubscribe_button": "Отписаться",
        "undo_button": "Отменить: получать предложения",
        "stop_all_button": "Не присылать никаких писем от {shop}",
        "undo_stop_all_button": "Отменить",
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
  form { margin: 0 0 12px; }
  button { padding: 10px 20px; border: 0; border-radius: 6px; background: #18181b;
           color: #fff; font: inherit; cursor: pointer; }
  form + form button { background: #e4e4e7; color: #18181b; }
</style>
</head>
<body>
<main>
<h1>{{ title }}</h1>
<p>{{ text }}</p>
{% for action, button in forms %}
<form method="post">
<input type="hidden" name="action" value="{{ action }}">
<button type="submit">{{ button }}</button>
</form>
{% endfor %}
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
        forms=[
            (action, texts[button].format(shop=shop)) for action, button in _FORMS.get(page, [])
        ],
    )
