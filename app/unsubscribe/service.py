"""What the unsubscribe link, page and mailto: address do. Unsubscribing means marketing
only; "stop all email" is a suppression; each can be undone by the customer; all recorded
(app/consent.py, app/suppressions/service.py)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.consent import (
    ConsentSource,
    record_all_mail,
    restore_marketing,
    withdraw_marketing,
)
from app.mail.unsubscribe import AddressToken, Recipient, unsubscribe_from_mail
from app.models import SuppressionReason
from app.suppressions.repository import add_suppression, get_suppression
from app.suppressions.service import RemovalSource, remove_address
from app.unsubscribe import repository


@dataclass(frozen=True)
class Subscriber:
    """Whom a valid token names now: the shop's address, or None once the customer was
    erased (or for a preview's sample token): then nothing is left to change."""

    shop: str
    email: str | None
    locale: str | None


class Action(enum.StrEnum):
    UNSUBSCRIBE = "unsubscribe"  # marketing off
    RESUBSCRIBE = "resubscribe"  # marketing on again (the page's undo)
    STOP_ALL = "stop_all"  # no mail of any kind from the shop
    UNDO_STOP_ALL = "undo_stop_all"


class State(enum.StrEnum):
    """What the page shows after an action."""

    UNSUBSCRIBED = "unsubscribed"
    RESUBSCRIBED = "resubscribed"
    STOPPED_ALL = "stopped_all"


async def subscriber(session: AsyncSession, recipient: Recipient) -> Subscriber:
    if isinstance(recipient, AddressToken):  # a link sent before tokens became opaque
        locale = await repository.customer_locale(
            session, shop=recipient.shop, email=recipient.email
        )
        return Subscriber(shop=recipient.shop, email=recipient.email.lower(), locale=locale)
    customer = await repository.customer(session, recipient.customer_id)
    if customer is None or customer.email is None or customer.deleted_at is not None:
        return Subscriber(shop="", email=None, locale=None)
    return Subscriber(shop=customer.shop, email=customer.email, locale=customer.locale)


async def apply(
    session: AsyncSession,
    who: Subscriber,
    action: Action,
    *,
    source: ConsentSource,
    now: datetime,
) -> State:
    """Do `action` for the subscriber; the state the page then shows. Repeats are harmless."""
    if action == Action.RESUBSCRIBE:
        if who.email:
            await restore_marketing(session, email=who.email, shop=who.shop, source=source, now=now)
        return State.RESUBSCRIBED
    if action == Action.STOP_ALL:
        if who.email:
            # All mail includes marketing: undoing "stop all" leaves them unsubscribed.
            await withdraw_marketing(
                session, emails=[who.email], shop=who.shop, source=source, now=now
            )
            _, created = await add_suppression(
                session,
                email=who.email,
                reason=SuppressionReason.UNSUBSCRIBE_ALL,
                detail=source.value,
                now=now,
            )
            if created:
                await record_all_mail(
                    session, email=who.email, shop=who.shop, stopped=True, source=source, now=now
                )
        return State.STOPPED_ALL
    if action == Action.UNDO_STOP_ALL:
        # Only the customer's own "stop all": a bounce or a complaint is not theirs to lift.
        if who.email and await remove_address(
            session,
            email=who.email,
            source=RemovalSource.PAGE,
            note=None,
            now=now,
            only_reason=SuppressionReason.UNSUBSCRIBE_ALL,
        ):
            await record_all_mail(
                session, email=who.email, shop=who.shop, stopped=False, source=source, now=now
            )
        return State.UNSUBSCRIBED  # marketing stays off: they had unsubscribed first
    if who.email:
        await withdraw_marketing(session, emails=[who.email], shop=who.shop, source=source, now=now)
    return State.UNSUBSCRIBED


async def stopped_all(session: AsyncSession, who: Subscriber) -> bool:
    """Whether the address is on the list by the customer's own "stop all"."""
    if not who.email:
        return False
    found = await get_suppression(session, who.email)
    return found is not None and found.reason == SuppressionReason.UNSUBSCRIBE_ALL


async def unsubscribe_by_mail(
    session: AsyncSession, *, local_part: str, secrets: Sequence[str], now: datetime
) -> bool:
    """Apply a mail to `unsubscribe+<token>@…` (the List-Unsubscribe mailto:): marketing off
    for its customer. False when the local part is not a valid token of ours."""
    found = unsubscribe_from_mail(local_part, secrets=secrets)
    if found is None:
        return False
    who = await subscriber(session, found)
    await apply(session, who, Action.UNSUBSCRIBE, source=ConsentSource.MAILTO, now=now)
    return True
