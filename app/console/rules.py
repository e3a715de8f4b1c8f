"""`/dashboard/rules`: every loaded rule with its file, lint, next sends and 30 days' figures;
a rule's page with its YAML, its templates previewed in every locale, and a test send.

Previews are the `aftersale preview` / `POST /api/v1/preview` ones (`compose_preview`): the
webhook example's order, or a chosen customer's latest stored order as the webhook body
that would have brought it. Their HTML is the shop operator's, so it is shown in a sandboxed
frame from `preview.html`, whose own policy lets it run no script and load only images. A
test send is that message to an address, subject marked "[TEST] ", through SMTP_URL: never
in the outbox, never tracked (a preview's links are the template's own), signed with DKIM.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import EmailStr, TypeAdapter, ValidationError

from app.api.deps import RuntimeDep, SessionDep
from app.catalog.item_links import catalog_for_items
from app.console.access import (
    CSP,
    HEADERS,
    Visit,
    forbidden,
    html,
    posted_form,
    see_other,
    to_login,
    visit,
)
from app.console.render import render
from app.events import EXAMPLE_BODY, OrderPlaced
from app.intake.aftersale import DEFAULT_SHOP
from app.mail.dkim import dkim_sign
from app.mail.sender import Delivered
from app.mail.templates import TemplateError, TemplateRenderer
from app.ops.ratelimit import ClientRateLimiter
from app.orders.repository import latest_order_of
from app.outbox.queue import NextSends, next_sends
from app.preview.command import send_once
from app.preview.endpoints import preview_recommender
from app.preview.lint import TemplateCheck
from app.preview.rule_lint import FolderLint, RuleSource, lint_folder, source_lines
from app.preview.service import (
    ComposedEmail,
    compose_preview,
    compose_test_send,
    preview_recommendations,
    stored_order_event,
)
from app.rules.model import Rule
from app.stats import service as stats
from app.stats.endpoints import DEFAULT_DAYS

router = APIRouter(prefix="/dashboard", include_in_schema=False)
HERE = "/dashboard/rules"
# A person trying templates sends a few; more than this from one client is not that.
SEND_TEST_PER_MINUTE = 3
SEND_TEST_BURST = 3
_LOCALE = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"
_ADDRESS = TypeAdapter(EmailStr)
# The rule page frames its previews: the console's policy, plus frames from here.
_PAGE_HEADERS = {
    "Content-Security-Policy": CSP.replace(
        "default-src 'none';", "default-src 'none'; frame-src 'self';"
    )
}
_FRAMED_HEADERS = HEADERS | {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src https: data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
    # The app's default answer header says DENY; this one is framed, by our pages alone.
    "X-Frame-Options": "SAMEORIGIN",
}
# What a test send's redirect may say (a code, never text from the request).
SEND_ERRORS = {
    "render": "The template did not render: nothing was sent. Its preview shows why.",
    "smtp": "The SMTP server did not take the message: nothing was sent.",
    "customer": "No stored order of that customer could be used: nothing was sent.",
}


@dataclass(frozen=True)
class Send:
    """One template a rule sends, and what of the rule sends it."""

    label: str
    template: str


@dataclass
class Figures:
    """A rule's figures of the span, its variants summed (from the stats API's rows)."""

    sent: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)

    @property
    def revenue_text(self) -> dict[str, str]:
        return {currency: str(amount) for currency, amount in self.revenue.items()}


@dataclass(frozen=True)
class RuleFacts:
    rule: Rule
    file: Path | None
    sends: list[Send]
    lint: RuleSource | None
    next: NextSends
    figures: Figures

    @property
    def errors(self) -> list[str]:
        return (
            []
            if self.lint is None
            else [f"{e.line}:{e.column}: {e.message}" for e in self.lint.errors]
        )


@dataclass(frozen=True)
class Preview:
    template: str
    locale: str
    subject: str | None
    text: str | None
    error: str | None


class _Unavailable(Exception):
    """A preview that cannot be made, said in words for the page."""


class _NoOrder(_Unavailable):
    """The chosen customer has no stored order a preview can use."""


def sends_of(rule: Rule) -> list[Send]:
    """The templates a rule sends: the first message's (or each variant's), then each step's."""
    if rule.variants is not None:
        found = [Send(f"variant {variant.label}", variant.template) for variant in rule.variants]
    else:
        found = [Send("first message", template) for template in rule.first_templates]
    first = len(found)
    found += [
        Send(f"step {number + 2}", template)
        for number, template in enumerate(rule.templates[first:])
    ]
    return found


def locales_of(templates_dir: Path, template: str) -> list[str]:
    """The locales a template is written in: its folder's locale folders."""
    folder = templates_dir / template
    if not folder.is_dir():
        return []
    return sorted(path.name for path in folder.iterdir() if path.is_dir())


async def _lint(request: Request, runtime: RuntimeDep) -> FolderLint:
    # One check per app: it keeps what it rendered while the templates folder is unchanged.
    check: TemplateCheck | None = getattr(request.app.state, "console_template_check", None)
    if check is None:
        check = TemplateCheck.for_settings(runtime.settings)
        request.app.state.console_template_check = check
    # The folder the running rules came from (RULES_DIR, unless a test gave another).
    source = runtime.rules
    return await run_in_threadpool(lint_folder, source.rules_dir, check=check, bounds=source.bounds)


async def _facts(
    request: Request, runtime: RuntimeDep, db: SessionDep, *, rule: str | None = None
) -> tuple[list[RuleFacts], FolderLint]:
    rules = runtime.rules.current
    lint = await _lint(request, runtime)
    waiting = await next_sends(db, rule=rule)
    table = await stats.by_rule(
        db, span=stats.Span.ending(runtime.clock.now().date(), days=DEFAULT_DAYS)
    )
    figures: dict[str, Figures] = defaultdict(Figures)
    for row in table.rows:
        summed = figures[row.rule]
        summed.sent += row.sent
        summed.opened += row.opened
        summed.clicked += row.clicked
        summed.converted += row.converted
        for currency, amount in row.revenue.items():
            summed.revenue[currency] = summed.revenue.get(currency, Decimal(0)) + Decimal(amount)
    chosen = [found for found in rules.rules if rule is None or found.id == rule]
    return [
        RuleFacts(
            rule=found,
            file=rules.files.get(found.id),
            sends=sends_of(found),
            lint=lint.rules.get(found.id),
            next=waiting.get(found.id, NextSends(count=0, first=[])),
            figures=figures[found.id],
        )
        for found in chosen
    ], lint


@router.get("/rules", response_class=HTMLResponse)
async def rules_page(request: Request, runtime: RuntimeDep, db: SessionDep) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    facts, lint = await _facts(request, runtime, db)
    body = render(
        "rules.html",
        visit=seen,
        here=HERE,
        source=runtime.rules,
        rules=facts,
        other=lint.other,
        days=DEFAULT_DAYS,
    )
    return html(body)


def _not_found(seen: Visit, rule_id: str) -> HTMLResponse:
    body = render("rule.html", visit=seen, here=HERE, facts=None, rule_id=rule_id)
    return html(body, status.HTTP_404_NOT_FOUND)


async def _event(db: SessionDep, customer: str) -> tuple[OrderPlaced, str]:
    """The order a preview shows, and whose shop it is: the customer's latest, or the sample."""
    if not customer:
        return OrderPlaced.model_validate(EXAMPLE_BODY), DEFAULT_SHOP
    found = await latest_order_of(
        db,
        email=customer if "@" in customer else None,
        number=None if "@" in customer else customer,
    )
    if found is None:
        raise _NoOrder("No stored order with items for this customer or order number.")
    stored_customer, order, items = found
    try:
        return stored_order_event(stored_customer, order, items), order.shop
    except ValidationError as exc:
        problem = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise _NoOrder(f"This customer's latest order cannot be previewed: {problem}") from exc


async def _compose(
    runtime: RuntimeDep,
    db: SessionDep,
    *,
    rule: Rule,
    template: str,
    locale: str,
    customer: str,
    to: str | None = None,
) -> ComposedEmail:
    """The rule's message as the preview shows it; to `to`, marked as a test, when given.
    _Unavailable when it cannot be made (no such customer, a template that does not render)."""
    event, shop = await _event(db, customer)
    settings, now = runtime.settings, runtime.clock.now()
    catalog = (await catalog_for_items(db, [(shop, event.order.items)])).get(shop, {})
    recommendations = None
    if rule.recommend is not None:
        recommendations = await preview_recommendations(
            db,
            recommender=preview_recommender(settings),
            event=event,
            shop=shop,
            rule=rule,
            now=now,
        )
    renderer = TemplateRenderer(
        settings.templates_dir,
        default_locale=settings.default_locale,
        time_limit=settings.render_timeout,
    )
    common: dict[str, Any] = {
        "settings": settings,
        "renderer": renderer,
        "template": template,
        "event": event,
        "shop": shop,
        "rule": rule,
        "locale": locale,
        "now": now,
        "recommendations": recommendations,
        "catalog": catalog,
    }
    try:
        # Rendering reads template files and is time-limited: in the thread pool.
        if to is None:
            return await run_in_threadpool(lambda: compose_preview(**common))
        return await run_in_threadpool(lambda: compose_test_send(to_address=to, **common))
    except (TemplateError, ValueError) as exc:
        raise _Unavailable(str(exc)) from exc


async def _previews(
    runtime: RuntimeDep, db: SessionDep, facts: RuleFacts, customer: str
) -> tuple[list[Preview], str | None]:
    """Every template of the rule in each of its locales; or why the customer cannot be used."""
    previews = []
    templates_dir = runtime.settings.templates_dir
    for template in dict.fromkeys(send.template for send in facts.sends):
        locales = locales_of(templates_dir, template)
        if not locales:
            previews.append(
                Preview(template, "", None, None, f"No folder {template!r} under TEMPLATES_DIR.")
            )
        for locale in locales:
            try:
                email = await _compose(
                    runtime,
                    db,
                    rule=facts.rule,
                    template=template,
                    locale=locale,
                    customer=customer,
                )
            except _NoOrder as exc:
                return [], str(exc)
            except _Unavailable as exc:
                previews.append(Preview(template, locale, None, None, str(exc)))
            else:
                previews.append(Preview(template, locale, email.subject, email.text, None))
    return previews, None


async def _rule_page(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    seen: Visit,
    facts: RuleFacts,
    *,
    customer: str = "",
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    previews, customer_error = await _previews(runtime, db, facts, customer)
    source = source_lines(facts.lint) if facts.lint is not None else ""
    body = render(
        "rule.html",
        visit=seen,
        here=HERE,
        facts=facts,
        rule_id=facts.rule.id,
        source=source,
        previews=previews,
        customer=customer,
        customer_error=customer_error,
        notice=notice,
        error=error,
        form=form or {"to": "", "template": facts.sends[0].template, "locale": ""},
        locales=sorted({p.locale for p in previews if p.locale})
        or [runtime.settings.default_locale],
        days=DEFAULT_DAYS,
        load_errors=runtime.rules.errors,
    )
    return html(body, status_code, **_PAGE_HEADERS)


@router.get("/rules/{rule_id}", response_class=HTMLResponse)
async def rule_page(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    rule_id: str,
    customer: Annotated[str, Query(max_length=320)] = "",
    sent: Annotated[int | None, Query(ge=1, le=1)] = None,
    error: str = "",
) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    found, _ = await _facts(request, runtime, db, rule=rule_id)
    if not found:
        return _not_found(seen, rule_id)
    notice = "The test message was sent." if sent else None
    return await _rule_page(
        request,
        runtime,
        db,
        seen,
        found[0],
        customer=customer.strip(),
        notice=notice,
        error=SEND_ERRORS.get(error),
    )


@router.get("/rules/{rule_id}/preview.html", response_class=HTMLResponse)
async def rule_preview(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    rule_id: str,
    template: Annotated[str, Query(max_length=128)],
    locale: Annotated[str, Query(max_length=35, pattern=_LOCALE)],
    customer: Annotated[str, Query(max_length=320)] = "",
) -> Response:
    """The HTML part alone, for the rule page's sandboxed frame."""
    if visit(request, runtime) is None:
        return to_login()
    rule = runtime.rules.current.by_id(rule_id)
    if rule is None or template not in rule.templates:
        return _framed("No such rule or template.", status.HTTP_404_NOT_FOUND)
    try:
        email = await _compose(
            runtime, db, rule=rule, template=template, locale=locale, customer=customer.strip()
        )
    except _Unavailable as exc:
        return _framed(str(exc), status.HTTP_422_UNPROCESSABLE_CONTENT)
    return HTMLResponse(email.html, headers=_FRAMED_HEADERS)


def _framed(problem: str, status_code: int) -> HTMLResponse:
    body = f'<!doctype html><html lang="en"><title>Not shown</title><p>{escape(problem)}</p></html>'
    return HTMLResponse(body, status_code=status_code, headers=_FRAMED_HEADERS)


def _send_limiter(request: Request) -> ClientRateLimiter:
    """The app's test-send limiter, made on first use (as the login's)."""
    limiter: ClientRateLimiter | None = getattr(request.app.state, "console_send_limiter", None)
    if limiter is None:
        limiter = ClientRateLimiter(per_minute=SEND_TEST_PER_MINUTE, burst=SEND_TEST_BURST)
        request.app.state.console_send_limiter = limiter
    return limiter


@router.post("/rules/{rule_id}/send-test", response_class=HTMLResponse)
async def send_test(
    request: Request, runtime: RuntimeDep, db: SessionDep, rule_id: str
) -> Response:
    form = await posted_form(request, runtime)
    seen = visit(request, runtime)
    if form is None or seen is None:
        return forbidden()
    found, _ = await _facts(request, runtime, db, rule=rule_id)
    if not found:
        return _not_found(seen, rule_id)
    facts = found[0]
    fields = {name: form.get(name, "").strip() for name in ("to", "template", "locale", "customer")}
    problem = None
    try:
        to = _ADDRESS.validate_python(fields["to"])
    except ValidationError:
        problem = "That is not an email address: give one like name@example.org."
    if problem is None and fields["template"] not in facts.rule.templates:
        problem = "Choose one of this rule's templates."
    if problem is None and fields["locale"] not in locales_of(
        runtime.settings.templates_dir, fields["template"]
    ):
        problem = "Choose one of the template's locales."
    if problem is not None:
        return await _rule_page(
            request,
            runtime,
            db,
            seen,
            facts,
            customer=fields["customer"],
            error=problem,
            form=fields,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    wait = await _send_limiter(request).take(request.client.host if request.client else "-")
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        return await _rule_page(
            request,
            runtime,
            db,
            seen,
            facts,
            customer=fields["customer"],
            error=f"Too many test sends. Try again in {seconds} seconds.",
            form=fields,
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        )
    back = f"{HERE}/{rule_id}"
    try:
        email = await _compose(
            runtime,
            db,
            rule=facts.rule,
            template=fields["template"],
            locale=fields["locale"],
            customer=fields["customer"],
            to=to,
        )
    except _NoOrder:
        return see_other(f"{back}?error=customer")
    except _Unavailable:
        return see_other(f"{back}?error=render")
    settings = runtime.settings
    try:
        outcome = await send_once(
            settings.smtp,
            envelope_from=settings.from_address[1],
            recipient=to,
            message=dkim_sign(email.eml, settings.dkim),
        )
    except ValueError:  # an address the server cannot take (e.g. no SMTPUTF8)
        return see_other(f"{back}?error=smtp")
    return see_other(f"{back}?sent=1" if isinstance(outcome, Delivered) else f"{back}?error=smtp")
