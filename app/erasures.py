"""The record of erased people, as digests: written by erasure, read by intake and by every
write of a suppression or a bounce.

After an erasure, mail about the person keeps arriving: a late `order.created` that
occurred before it, an old unsubscribe link, a bounce report. None of it may bring their
address back into the database (docs/privacy.md, Erasure).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Erasure
from app.privacy import email_digest

# Addresses as they stand in a raw body (JSON strings, form fields).
_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")


def id_subject(external_id: str) -> str:
    return email_digest(f"id:{external_id}")


async def record_erasure(
    session: AsyncSession, *, shop: str, external_id: str | None, email: str | None, at: datetime
) -> None:
    subjects = {email_digest(email)} if email else set()
    if external_id:
        subjects.add(id_subject(external_id))
    session.add_all(Erasure(shop=shop, subject=subject, erased_at=at) for subject in subjects)
    await session.flush()


async def erased_at(
    session: AsyncSession, *, shop: str, external_ids: Iterable[str], emails: Iterable[str]
) -> datetime | None:
    """When the person with any of these ids or addresses was last erased in the shop."""
    subjects = [id_subject(value) for value in external_ids if value]
    subjects += [email_digest(value) for value in emails if value]
    if not subjects:
        return None
    return (
        await session.execute(
            select(func.max(Erasure.erased_at)).where(
                Erasure.shop == shop, Erasure.subject.in_(subjects)
            )
        )
    ).scalar_one()


async def is_erased_address(session: AsyncSession, email: str) -> bool:
    """Whether any shop erased someone with this address."""
    found = await session.execute(
        select(Erasure.id).where(Erasure.subject == email_digest(email)).limit(1)
    )
    return found.first() is not None


async def stored_address(session: AsyncSession, email: str) -> str:
    """The form an address is kept in on the suppression list: lower-cased, or its digest
    once its person was erased (the suppression still holds: the check looks up both)."""
    if await is_erased_address(session, email):
        return email_digest(email)
    return email.strip().lower()


async def names_the_erased(session: AsyncSession, *, shop: str, body: str) -> bool:
    """Whether a raw body names an address whose person the shop erased: such a body that
    changes nothing (ignored) is not kept."""
    emails = {found.lower() for found in _ADDRESS.findall(body[:1_048_576])}
    if not emails:
        return False
    return (
        await erased_at(session, shop=shop, external_ids=(), emails=sorted(emails)[:50]) is not None
    )
