"""`aftersale rules check`: every problem in a rules folder, as file:line:col: message.

Besides the file format, it renders each rule's template with sample data, so a missing
template or an undefined variable is found before a customer would have been mailed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.coupons.codes import sample_coupon
from app.mail.templates import TemplateError, TemplateRenderer
from app.rules.loader import DEFAULT_BOUNDS, Bounds, RuleError, parse_rule_files
from app.rules.model import Rule
from app.survey.links import sample_survey_context
from app.tracking.rewrite import html_hrefs, link_scheme

SAMPLE_CONTEXT: dict[str, Any] = {
    "customer": {"first_name": "Anna", "last_name": "Ivanova", "locale": "en"},
    "order": {
        "id": "820982911946154508",
        "number": "1001",
        "total": Decimal("49.80"),
        "currency": "EUR",
        "created_at": datetime(2026, 11, 20, 9, 59, tzinfo=UTC),
        "attributes": {},
        "items": [],  # filled below: the same sample item
    },
    "items": [
        {
            "sku": "DIAPER-M-60",
            "name": "Diapers M, 60 pcs",
            "category": "baby/diapers",
            "quantity": 2,
            "unit_price": Decimal("24.90"),
            "tags": ["baby"],
            "attributes": {},
        }
    ],
    "shop": {"name": "Sample Shop"},
    "message": {"send_at": datetime(2026, 11, 27, 10, 0, tzinfo=UTC)},
    # A coupon rule's templates are also rendered with `sample_coupon` (see `_coupon_cases`).
    "coupon": None,
    # Previews and test sends put their own public URL in; these links record nothing.
    "survey": sample_survey_context("https://aftersale.example"),
}


SAMPLE_CONTEXT["order"]["items"] = SAMPLE_CONTEXT["items"]
# What a link in mail may be: javascript:, data: and the like run or hide content, and a
# relative link leads nowhere from a mailbox.
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})


def check_rules(
    rules_dir: Path, *, templates_dir: Path, default_locale: str, bounds: Bounds = DEFAULT_BOUNDS
) -> list[RuleError]:
    parsed = parse_rule_files(rules_dir, bounds=bounds)
    errors = list(parsed.errors)
    renderer = TemplateRenderer(templates_dir, default_locale=default_locale)
    checked: dict[tuple[str, str | None, str], str | None] = {}
    for rule, path, positions, index in parsed.rules:
        for number, template in enumerate(rule.templates):
            problem = None
            for coupon, case in _coupon_cases(rule):
                key = (template, coupon, case)
                if key not in checked:
                    checked[key] = _template_problem(
                        renderer, templates_dir, template, default_locale, coupon, case
                    )
                problem = problem or checked[key]
            if problem is not None:
                place: tuple[str | int, ...] = ("rules", index, "template")
                if rule.variants is not None:
                    place = ("rules", index, "variants", number, "template")
                where = positions.locate(place)
                errors.append(RuleError(path, where.line, where.column, problem))
    return errors


def _coupon_cases(rule: Rule) -> list[tuple[str | None, str]]:
    """The pools a rule's templates must render with (None: without a coupon), and how an
    error names the case.

    A coupon rule's mail carries a code, and with `when_empty: send` may come without one
    (the template then needs `{% if coupon %}`); any other rule's mail never has one.
    """
    if rule.coupon is None:
        return [(None, "")]
    with_code = (rule.coupon.pool, ", with a coupon")
    if rule.coupon.when_empty == "send":
        return [with_code, (None, ", without a coupon: the pool may be empty")]
    return [with_code]


def _template_problem(
    renderer: TemplateRenderer,
    templates_dir: Path,
    template: str,
    default_locale: str,
    coupon: str | None,
    case: str,
) -> str | None:
    folder = templates_dir / template
    if not (folder / default_locale / "subject.txt").is_file():
        return (
            f"template {template!r} has no {default_locale}/subject.txt and body.html "
            f"under {templates_dir} (the default locale must exist)"
        )
    locales = sorted(path.name for path in folder.iterdir() if path.is_dir())
    context = SAMPLE_CONTEXT
    if coupon is not None:
        context = {**SAMPLE_CONTEXT, "coupon": sample_coupon(coupon).context()}
    for locale in locales:
        try:
            rendered = renderer.render(template, locale=locale, context=context)
        except TemplateError as exc:
            return f"template {template!r} ({locale}{case}) does not render: {exc}"
        try:
            hrefs = html_hrefs(rendered.html)
        except ValueError as exc:  # markup the HTML tokenizer refuses, as mail clients may
            return f"template {template!r} ({locale}{case}) has HTML that cannot be read: {exc}"
        for href in hrefs:
            if link_scheme(href.url) not in _LINK_SCHEMES:
                return (
                    f"template {template!r} ({locale}) has a link to {href.url[:80]!r}: "
                    "links in mail must be absolute http:// or https:// URLs (or mailto:, tel:)"
                )
    return None
