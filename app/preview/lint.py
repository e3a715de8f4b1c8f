"""`aftersale rules check`: every problem in a rules folder, as file:line:col: message.

Besides the file format, it renders each rule's template in every locale it has, with
several sample contexts (non-ASCII and missing names, no items, a long order) and the
render time limit, so a missing template, an undefined variable or a template too slow to
send is found before a customer would have been mailed. Every reload runs the same check
(`TemplateCheck`, given to `app.rules.source.RulesSource` by `Runtime.create`).

It lives beside the previews, which render with the same sample data, rather than in
app/rules: rendering needs mail, coupons, survey, tracking and catalog, and those import the
rules, so the rules must not import them (no package cycles).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.catalog.links import NamedLinks
from app.config import Settings
from app.coupons.codes import sample_coupon
from app.mail.templates import RenderTimeout, TemplateError, TemplateRenderer
from app.reviews.links import sample_answered_review_context, sample_review_context
from app.rules.bounds import DEFAULT_BOUNDS, Bounds
from app.rules.loader import ParsedRules, RuleError, parse_rule_files
from app.rules.model import ORDER_EVENTS, REVIEW_ANSWERED, Rule, reward_rule
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
            # What the catalog and the shop's settings add (app/catalog/links.py).
            "url": "https://shop.example/products/diapers-m?variant=44712043118926",
            "image_url": "https://shop.example/images/diapers-m.jpg",
            "product": {
                "title": "Diapers M",
                "variant_title": "60 pcs",
                "url": "https://shop.example/products/diapers-m?variant=44712043118926",
                "image_url": "https://shop.example/images/diapers-m.jpg",
                "price": Decimal("24.90"),
                "currency": "EUR",
                "vendor": "Lillydoo",
                "product_type": "Diapers",
                "categories": ["Baby & Toddler > Diapering > Diapers"],
                "tags": ["eco"],
                "handle": "diapers-m",
                "sku": "DIAPER-M-60",
                "product_id": "8012345678901",
                "variant_id": "44712043118926",
                "available": True,
            },
            "reorder_url": "https://shop.example/cart/44712043118926:2",
            "product_id": "8012345678901",
            "variant_id": "44712043118926",
        }
    ],
    "shop": {
        "name": "Sample Shop",
        "url": "https://shop.example",
        "address": "Sample Shop GmbH, Hauptstraße 1, 10115 Berlin, Germany",
    },
    # A rule's `links` (a name it does not give is None).
    "links": NamedLinks(),
    "message": {"send_at": datetime(2026, 11, 27, 10, 0, tzinfo=UTC)},
    # A coupon rule's templates are also rendered with `sample_coupon` (see `_coupon_cases`).
    "coupon": None,
    # Previews and test sends put their own public URL in; these links record nothing.
    "survey": sample_survey_context("https://aftersale.example"),
    # What a rule with `recommend` gets from the catalog (app/catalog/recommendations.py).
    "recommendations": [
        {
            "title": title,
            "url": f"https://shop.example/products/{handle}",
            "image_url": f"https://shop.example/images/{handle}.jpg",
            "price": Decimal(price),
            "currency": "EUR",
            "sku": handle.upper(),
            "product_id": str(7_354_000_000_000 + number),
        }
        for number, (title, handle, price) in enumerate(
            [
                ("Wet wipes sensitive, 4 × 52", "wipes-4x52", "9.90"),
                ("Nappy cream 75 ml", "nappy-cream-75", "5.49"),
                ("Changing mat", "changing-mat", "24.00"),
            ]
        )
    ],
}


SAMPLE_CONTEXT["order"]["items"] = SAMPLE_CONTEXT["items"]
# A rule with `review` gets its items to rate (app/reviews/links.py); links record nothing.
SAMPLE_CONTEXT["review"] = sample_review_context(
    "https://aftersale.example", SAMPLE_CONTEXT["items"]
)
# What a link in mail may be: javascript:, data: and the like run or hide content, and a
# relative link leads nowhere from a mailbox.
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})


def _sample_item(number: int) -> dict[str, Any]:
    # Every other item is one the catalog does not know: no page, picture or reorder link,
    # which a template must show without a broken link.
    known = number % 2 == 1
    url = f"https://shop.example/products/care-{number}" if known else None
    image = f"https://shop.example/images/care-{number}.jpg" if known else None
    return {
        "sku": f"SKU-{number:04d}",
        "name": f"Größe {number} – крем для рук, 50 ml",
        "category": "care/hands",
        "quantity": number % 5 + 1,
        "unit_price": Decimal("3.05") * number,
        "tags": ["care", "geschenk"],
        "attributes": {"size": "50 ml"},
        "url": url,
        "image_url": image,
        "product": {**SAMPLE_CONTEXT["items"][0]["product"], "url": url, "image_url": image}
        if known
        else None,
        "reorder_url": f"https://shop.example/cart/{44712043118926 + number}:1" if known else None,
        "product_id": str(8012345678901 + number) if known else None,
        "variant_id": str(44712043118926 + number) if known else None,
    }


def _with(
    *, customer: dict[str, Any] | None = None, items: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    context = {**SAMPLE_CONTEXT, "customer": {**SAMPLE_CONTEXT["customer"], **(customer or {})}}
    if items is not None:
        context["items"] = items
        context["order"] = {**SAMPLE_CONTEXT["order"], "items": items}
    return context


_LONG_ORDER = [_sample_item(number) for number in range(1, 61)]
# What real mail brings that the first sample does not: names in other scripts or none at
# all (guest checkout), a long order. Order mail always has an item: an order has 1 to 1,000,
# and mail whose items were all refunded is cancelled; mail without items is dated mail.
ORDER_SAMPLES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("", SAMPLE_CONTEXT),
    (
        "non-ASCII names",
        _with(customer={"first_name": "Zoë-Łucja", "last_name": "Müller 李 Ярославна"}),
    ),
    ("no names", _with(customer={"first_name": None, "last_name": None})),
    ("60 items", _with(items=_LONG_ORDER)),
)
# Birthdays and other dated mail: no order and no items (`app.mail.context.build_context`).
_NO_ORDER: dict[str, Any] = {
    "id": None,
    "number": None,
    "attributes": {},
    "total": None,
    "currency": None,
    "created_at": None,
    "items": [],
}
DATED_SAMPLES: tuple[tuple[str, dict[str, Any]], ...] = tuple(
    (label, {**context, "order": _NO_ORDER, "items": []})
    for label, context in ORDER_SAMPLES
    if label != "60 items"
)


def check_rules(
    rules_dir: Path,
    *,
    templates_dir: Path,
    default_locale: str,
    render_timeout: float | None = 5.0,
    bounds: Bounds = DEFAULT_BOUNDS,
) -> list[RuleError]:
    parsed = parse_rule_files(rules_dir, bounds=bounds)
    check = TemplateCheck(templates_dir, default_locale=default_locale, time_limit=render_timeout)
    return [*parsed.errors, *check.errors(parsed)]


class TemplateCheck:
    """Renders every template the rules use, in each of its locales, against the sample
    contexts, within the render time limit; the first problem of each is an error at its
    rule's `template:` line. `rules check` and every reload (`RulesSource`) run it.

    Results are kept while the templates folder is unchanged (`fingerprint`), so a reload
    for a rules edit renders only templates it has not seen."""

    def __init__(
        self, templates_dir: Path, *, default_locale: str, time_limit: float | None = 5.0
    ) -> None:
        self.templates_dir = templates_dir
        self.default_locale = default_locale
        self.time_limit = time_limit
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._problems: dict[tuple[str, str | None, str, bool, bool], str | None] = {}

    @classmethod
    def for_settings(cls, settings: Settings) -> TemplateCheck:
        """The check every process runs on reload: TEMPLATES_DIR, DEFAULT_LOCALE and
        RENDER_TIMEOUT as configured."""
        return cls(
            settings.templates_dir,
            default_locale=settings.default_locale,
            time_limit=settings.render_timeout,
        )

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Every file under the templates folder: name, size, modification time."""
        if not self.templates_dir.is_dir():
            return ()
        found = []
        for path in sorted(self.templates_dir.rglob("*")):
            if path.is_file():
                stat = path.stat()
                found.append((path.as_posix(), stat.st_size, stat.st_mtime_ns))
        return tuple(found)

    def errors(self, parsed: ParsedRules) -> list[RuleError]:
        seen = self.fingerprint()
        if seen != self._seen:
            self._seen, self._problems = seen, {}
        renderer = TemplateRenderer(
            self.templates_dir,
            default_locale=self.default_locale,
            recheck_seconds=0,
            time_limit=self.time_limit,
        )
        errors = []
        for rule, path, positions, index in parsed.rules:
            dated = rule.when.event not in ORDER_EVENTS
            sends: list[tuple[tuple[str | int, ...], str]] = []
            first = len(rule.first_templates)
            for number, template in enumerate(rule.templates):
                if number >= first:  # a step's own template
                    sends.append((("steps", number - first, "template"), template))
                elif rule.variants is not None:
                    sends.append((("variants", number, "template"), template))
                else:
                    sends.append((("template",), template))
            reward = reward_rule(rule)
            if reward is not None:
                # The survey's reward mail: checked with the reward's coupon, like a rule's.
                sends.append((("survey", "reward", "template"), reward.templates[0]))
            for where_in_rule, template in sends:
                sending = reward if where_in_rule[0] == "survey" else rule
                assert sending is not None
                answered = sending.when.event == REVIEW_ANSWERED
                problem = None
                for coupon, case in _coupon_cases(sending):
                    key = (template, coupon, case, dated, answered)
                    if key not in self._problems:
                        self._problems[key] = self._problem(
                            renderer, template, coupon, case, dated, answered
                        )
                    problem = problem or self._problems[key]
                if problem is not None:
                    where = positions.locate(("rules", index, *where_in_rule))
                    errors.append(RuleError(path, where.line, where.column, problem))
        return errors

    def _problem(
        self,
        renderer: TemplateRenderer,
        template: str,
        coupon: str | None,
        case: str,
        dated: bool,
        answered: bool = False,
    ) -> str | None:
        folder = self.templates_dir / template
        if not (folder / self.default_locale / "subject.txt").is_file():
            return (
                f"template {template!r} has no {self.default_locale}/subject.txt and body.html "
                f"under {self.templates_dir} (the default locale must exist)"
            )
        locales = sorted(path.name for path in folder.iterdir() if path.is_dir())
        for locale in locales:
            for label, sample in DATED_SAMPLES if dated else ORDER_SAMPLES:
                context = {**sample, "customer": {**sample["customer"], "locale": locale}}
                if answered:
                    # The review it follows up: one with a comment, and (below) one without.
                    context["review"] = sample_answered_review_context(SAMPLE_CONTEXT["items"])
                if coupon is not None:
                    context["coupon"] = sample_coupon(coupon).context()
                named = f"{locale}{case}{', ' + label if label else ''}"
                problem = _rendering_problem(renderer, template, locale, context, named)
                if problem is None and answered:
                    context["review"] = sample_answered_review_context(
                        SAMPLE_CONTEXT["items"], comment=None
                    )
                    named = f"{named}, a review without a comment"
                    problem = _rendering_problem(renderer, template, locale, context, named)
                if problem is not None:
                    return problem
        return None


def _rendering_problem(
    renderer: TemplateRenderer, template: str, locale: str, context: dict[str, Any], named: str
) -> str | None:
    try:
        rendered = renderer.render(template, locale=locale, context=context)
    except RenderTimeout as exc:
        return f"template {template!r} ({named}) is too slow to render: {exc}"
    except TemplateError as exc:
        return f"template {template!r} ({named}) does not render: {exc}"
    try:
        hrefs = html_hrefs(rendered.html)
    except ValueError as exc:  # markup the HTML tokenizer refuses, as mail clients may
        return f"template {template!r} ({named}) has HTML that cannot be read: {exc}"
    for href in hrefs:
        if link_scheme(href.url) not in _LINK_SCHEMES:
            return (
                f"template {template!r} ({named}) has a link to {href.url[:80]!r}: "
                "links in mail must be absolute http:// or https:// URLs (or mailto:, tel:)"
            )
    return None


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
