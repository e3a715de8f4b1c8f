"""Marketing consent as the customer changes it: unsubscribe, resubscribe, stop all mail.

Unsubscribing means marketing only: the customer's `marketing_consent` goes off and
`marketing_opt_out_at` is set, so a shop's webhook that still says "consents" does not turn
marketing back on; only the customer's own resubscribe does. Transactional mail goes on.
"Stop all email" is a suppression (`unsubscribe_all`), which stops every kind. Each change is
a `consent_changes` row: when, which customer, what, and through what.

Low in the import graph (models and the database only), so that unsubscribe, suppressions and
privacy requests can all use it without importing one another.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ConsentChange, ConsentChangeKind, Customer


class ConsentSource(enum.StrEnum):
    ONE_CLICK = "one-click"  # a mail provider's button (RFC 8058 POST)
    PAGE = "page"  # the unsubscribe page's forms
    MAILTO = "mailto"  # mail to the List-Unsubscribe mailto: address
    # An operator removed an old `unsubscribe` suppression: marketing stays off.
    LIST_REMOVAL = "list_removal"


async def withdraw_marketing(
    session: AsyncSession,
    *,
    emails: Sequence[str],
    shop: str | None,
    source: ConsentSource,
    now: datetime,
) -> int:
    """Marketing off for the customers at `emails` (of `shop`, or every shop); how many
    changed. A customer already opted out is left as is: a repeated click records nothing."""
    customers = await customers_at(session, emails=emails, shop=shop)
    changed = [customer for customer in customers if customer.marketing_opt_out_at is None]
    await _set_marketing(
        session, [customer.id for customer in changed], consent=False, opt_out_at=now
    )
    await _record(session, changed, ConsentChangeKind.MARKETING_OFF, source=source, now=now)
    return len(changed)


async def restore_marketing(
    session: AsyncSession, *, email: str, shop: str, source: ConsentSource, now: datetime
) -> int:
    """The customer's undo of an unsubscribe: marketing on again; how many changed."""
    customers = await customers_at(session, emails=[email], shop=shop)
    changed = [
        customer
        for customer in customers
        if customer.marketing_opt_out_at is not None or not customer.marketing_consent
    ]
    await _set_marketing(
        session, [customer.id for customer in changed], consent=True, opt_out_at=None
    )
    await _record(session, changed, ConsentChangeKind.MARKETING_ON, source=source, now=now)
    return len(changed)


async def record_all_mail(
    session: AsyncSession,
    *,
    email: str,
    shop: str,
    stopped: bool,
    source: ConsentSource,
    now: datetime,
) -> None:
    """Record "stop all email" (or its undo) for the shop's customers at the address; the
    suppression itself is the caller's."""
    customers = await customers_at(session, emails=[email], shop=shop)
    kind = ConsentChangeKind.ALL_OFF if stopped else ConsentChangeKind.ALL_ON
    await _record(session, customers, kind, source=source, now=now)


async def _record(
    session: AsyncSession,
    customers: Sequence[Customer],
    change: ConsentChangeKind,
    *,
    source: ConsentSource,
    now: datetime,
) -> None:
    await _add_consent_changes(
        session,
        [
            {
                "customer_id": customer.id,
                "shop": customer.shop,
                "email": customer.email,
                "change": change.value,
                "source": source.value,
                "at": now,
            }
            for customer in customers
        ],
    )


# -- SQL --------------------------------------------------------------------------------------


async def customers_at(
    session: AsyncSession, *, emails: Sequence[str], shop: str | None
) -> list[Customer]:
    """The customers (not erased) at these addresses, of `shop` or of every shop."""
    statement = select(Customer).where(
        Customer.email.in_([email.lower() for email in emails]), Customer.deleted_at.is_(None)
    )
    if shop is not None:
        statement = statement.where(Customer.shop == shop)
    return list((await session.execute(statement.order_by(Customer.id))).scalars())


async def _set_marketing(
    session: AsyncSession, ids: Sequence[int], *, consent: bool, opt_out_at: datetime | None
) -> None:
    await session.execute(
        update(Customer)
        .where(Customer.id.in_(ids))
        .values(marketing_consent=consent, marketing_opt_out_at=opt_out_at)
        .execution_options(synchronize_session=False)
    )


async def _add_consent_changes(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(ConsentChange), list(rows))


async def consent_changes(session: AsyncSession, customer_id: int) -> list[ConsentChange]:
    statement = (
        select(ConsentChange)
        .where(ConsentChange.customer_id == customer_id)
        .order_by(ConsentChange.id)
    )
    return list((await session.execute(statement)).scalars())
