"""`aftersale preview` and `aftersale send-test`: see a rule's email before a customer does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from app.catalog.recommender import Recommender
from app.config import Settings
from app.db import create_engine, create_session_factory
from app.events import OrderPlaced
from app.intake.aftersale import DEFAULT_SHOP
from app.mail.dkim import dkim_sign
from app.mail.sender import Delivered, SendOutcome, SmtpPool
from app.mail.smtp_url import SmtpConfig
from app.mail.templates import TemplateError, TemplateRenderer
from app.preview.service import compose_preview, compose_test_send, preview_recommendations
from app.rules.loader import RuleSet, load_rules
from app.rules.model import Rule

PREVIEW_FILES = ("subject.txt", "body.txt", "body.html", "message.eml")


class _Failed(Exception):
    """A problem already worded for the user."""


def preview_command(
    *,
    settings: Settings,
    template: str,
    order: Path,
    locale: str | None,
    out: Path | None,
    rule_id: str | None,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """Write the four preview files to `out`, or print subject and text; 1 on any problem."""
    try:
        event = read_order(order)
        rules = load_rules(settings.rules_dir, bounds=settings.rules_bounds)
        rule = _rule_for_template(rules, template, rule_id)
        now = datetime.now(UTC)
        recommendations = None
        if rule is not None and rule.recommend is not None:
            recommendations = _recommendations(settings, event, rule, now=now, stderr=stderr)
        email = compose_preview(
            settings=settings,
            renderer=_renderer(settings),
            template=template,
            event=event,
            shop=DEFAULT_SHOP,  # the body is one of POST /webhooks/orders
            rule=rule,
            locale=locale,
            now=now,
            recommendations=recommendations,
        )
    except _Failed as exc:
        print(f"aftersale preview: {exc}", file=stderr)
        return 1
    except (TemplateError, ValueError) as exc:
        print(f"aftersale preview: {template}: {exc}", file=stderr)
        return 1
    if rule is not None and rule_id is None:
        print(f"aftersale preview: as rule {rule.id!r} ({rule.kind})", file=stderr)
    if out is None:
        print(email.subject, file=stdout)
        print(file=stdout)
        print(email.text, end="", file=stdout)
        return 0
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "subject.txt").write_text(email.subject + "\n", encoding="utf-8")
        (out / "body.txt").write_text(email.text, encoding="utf-8")
        (out / "body.html").write_text(email.html, encoding="utf-8")
        (out / "message.eml").write_bytes(email.eml)
    except OSError as exc:
        print(f"aftersale preview: {out}: {exc.strerror or exc}", file=stderr)
        return 1
    print(f"{out}: {', '.join(PREVIEW_FILES)}", file=stdout)
    return 0


def send_test_command(
    *,
    settings: Settings,
    rule_id: str,
    to: str,
    order: Path | None,
    locale: str | None,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """Send one "[TEST] " message of the rule through settings.smtp; 1 with the SMTP error."""
    try:
        event = read_order(order) if order is not None else None
        rule = _rule(load_rules(settings.rules_dir, bounds=settings.rules_bounds), rule_id)
        email = compose_test_send(
            settings=settings,
            renderer=_renderer(settings),
            rule=rule,
            to_address=to,
            event=event,
            shop=DEFAULT_SHOP,
            locale=locale,
            now=datetime.now(UTC),
        )
    except _Failed as exc:
        print(f"aftersale send-test: {exc}", file=stderr)
        return 1
    except (TemplateError, ValueError) as exc:
        print(f"aftersale send-test: {rule_id}: {exc}", file=stderr)
        return 1
    smtp = settings.smtp
    try:
        outcome = asyncio.run(
            send_once(
                smtp,
                envelope_from=settings.from_address[1],
                recipient=to,
                message=dkim_sign(email.eml, settings.dkim),
            )
        )
    except ValueError as exc:  # an address that cannot go on the wire
        print(f"aftersale send-test: {exc}", file=stderr)
        return 1
    if isinstance(outcome, Delivered):
        print(f"sent {email.message_id} to {to} via {smtp.host}:{smtp.port}", file=stdout)
        print(outcome.response, file=stdout)
        return 0
    print(
        f"aftersale send-test: {smtp.host}:{smtp.port} did not take the message for {to}: "
        f"{outcome.detail}",
        file=stderr,
    )
    return 1


def _recommendations(
    settings: Settings, event: OrderPlaced, rule: Rule, *, now: datetime, stderr: TextIO
) -> list[dict[str, Any]]:
    """What the catalog in the database recommends for this order, as the dispatcher would;
    none (said on stderr) when the database cannot be read."""

    async def pick() -> list[dict[str, Any]]:
        engine = create_engine(settings.database_url)
        try:
            async with create_session_factory(engine)() as session:
                return await preview_recommendations(
                    session,
                    recommender=Recommender.from_settings(settings),
                    event=event,
                    shop=DEFAULT_SHOP,
                    rule=rule,
                    now=now,
                )
        finally:
            await engine.dispose()

    try:
        found = asyncio.run(pick())
    except (SQLAlchemyError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"aftersale preview: no recommendations (database: {reason})", file=stderr)
        return []
    shown = ", ".join(product["sku"] or product["title"] for product in found) or "none"
    print(f"aftersale preview: recommendations: {shown}", file=stderr)
    return found


def read_order(path: Path) -> OrderPlaced:
    """An `order.created` webhook body from a JSON file, validated as the webhook does."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _Failed(f"{path}: {exc.strerror or exc}") from exc
    try:
        return OrderPlaced.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors()
        )
        raise _Failed(f"{path}: not an order.created webhook body: {problems}") from exc


async def send_once(
    smtp: SmtpConfig, *, envelope_from: str, recipient: str, message: bytes
) -> SendOutcome:
    """One message through a pool of its own, closed after (a test send, not the worker's)."""
    pool = SmtpPool(smtp)
    try:
        return await pool.send(envelope_from=envelope_from, recipient=recipient, message=message)
    finally:
        await pool.close()


def _renderer(settings: Settings) -> TemplateRenderer:
    return TemplateRenderer(
        settings.templates_dir,
        default_locale=settings.default_locale,
        time_limit=settings.render_timeout,
    )


def _rule(rules: RuleSet, rule_id: str) -> Rule:
    rule = rules.by_id(rule_id)
    if rule is not None:
        return rule
    known = ", ".join(sorted(rule.id for rule in rules.rules)) or "none"
    errors = f"; {len(rules.errors)} error(s) in the rules folder" if rules.errors else ""
    raise _Failed(f"no rule {rule_id!r} (loaded: {known}{errors})")


def _rule_for_template(rules: RuleSet, template: str, rule_id: str | None) -> Rule | None:
    """The rule that says what kind of mail this is and which items it is about.

    `--rule` names it; otherwise the first rule that sends the template, if any.
    """
    if rule_id is not None:
        rule = _rule(rules, rule_id)
        if template not in rule.templates:
            raise _Failed(f"rule {rule_id!r} does not send template {template!r}")
        return rule
    return next((rule for rule in rules.rules if template in rule.templates), None)
