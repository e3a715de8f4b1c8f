"""Coupon rules, pools and the customers their messages go to."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from app.coupons.codes import CodeLine
from app.coupons.service import import_codes
from app.db import transaction
from app.models import CouponCode, Customer, Message
from app.runtime import Runtime
from tests.outbox.conftest import use_rules

POOL = "BIRTHDAY"


def coupon_rule(*, when_empty: str = "skip", pool: str = POOL) -> str:
    """A marketing rule that mails the shipped birthday template with a code of `pool`."""
    return f"""
rules:
  - id: promo
    kind: marketing
    when: {{event: birthday}}
    send: {{at: 0d}}
    template: birthday
    coupon: {{pool: {pool}, when_empty: {when_empty}}}
"""


def use_coupon_rule(runtime: Runtime, folder: Path, **kwargs: str) -> None:
    folder.mkdir(exist_ok=True)
    use_rules(runtime, folder, coupon_rule(**kwargs))


async def add_pool(
    runtime: Runtime,
    codes: Sequence[str],
    *,
    pool: str = POOL,
    shop: str | None = None,
    expires_at: datetime | None = None,
) -> None:
    async with transaction(runtime.session_factory) as session:
        await import_codes(
            session,
            pool=pool,
            shop=shop,
            codes=[CodeLine(n, code, expires_at) for n, code in enumerate(codes, 1)],
            now=runtime.clock.now(),
        )


async def seed_messages(
    runtime: Runtime, count: int, *, shop: str = "default", first: int = 0
) -> dict[str, int]:
    """`count` due promo messages, one per consenting customer; {address: message id}."""
    now = runtime.clock.now()
    async with transaction(runtime.session_factory) as session:
        customers = [
            Customer(
                shop=shop,
                external_id=f"c{i}",
                email=f"user{i}@example.org",
                first_name=f"User{i}",
                locale="en",
                marketing_consent=True,
                source_updated_at=now,
                attributes={},
            )
            for i in range(first, first + count)
        ]
        session.add_all(customers)
        await session.flush()
        messages = [
            Message(
                customer_id=customer.id,
                rule_id="promo",
                rule_version="v",
                template="birthday",
                kind="marketing",
                dedupe_key=f"seed:{customer.id}",
                status="scheduled",
                send_at=now,
                next_attempt_at=now,
                attempts=0,
            )
            for customer in customers
        ]
        session.add_all(messages)
        await session.flush()
        return {
            str(customer.email): message.id
            for customer, message in zip(customers, messages, strict=True)
        }


async def codes_by_message(runtime: Runtime) -> dict[int, str]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(CouponCode.message_id, CouponCode.code).where(CouponCode.message_id.is_not(None))
        )
        return {message_id: code for message_id, code in rows}


_CODE_IN_TEXT = re.compile(r"at checkout:\r?\n\r?\n    (\S+)\r?\n")


def code_in_mail(text: str) -> str | None:
    """The code the birthday template shows in the text part, if any."""
    found = _CODE_IN_TEXT.search(text)
    return found.group(1) if found else None
