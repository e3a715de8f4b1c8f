"""All SQL of the suppression list. Addresses are stored and compared lower-cased."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import LIKE_ESCAPE, containing, dialect_insert
from app.erasures import stored_address
from app.models import Suppression, SuppressionRemoval
from app.privacy import DIGEST_PREFIX, email_digest


async def add_suppression(
    session: AsyncSession, *, email: str, reason: str, detail: str | None, now: datetime
) -> tuple[Suppression, bool]:
    """The address's suppression and whether this call created it.

    An address already suppressed keeps its first reason: a later unsubscribe must not
    hide that it once bounced. ON CONFLICT makes concurrent calls for one address safe.
    """
    email = await stored_address(session, email)  # a digest for someone erased
    if email.startswith(DIGEST_PREFIX):
        detail = None
    insert = dialect_insert(session)
    created = (
        await session.execute(
            insert(Suppression)
            .values(email=email, reason=reason, detail=detail, created_at=now)
            .on_conflict_do_nothing(index_elements=["email"])
            .returning(Suppression.id)
        )
    ).scalar_one_or_none() is not None
    suppression = await get_suppression(session, email)
    assert suppression is not None  # inserted above, or there before
    return suppression, created


async def suppress(session: AsyncSession, *, email: str, reason: str, detail: str | None) -> None:
    """Suppress the address (a bounce, a complaint); one already suppressed keeps its first
    reason. Unlike `add_suppression`, loads nothing: the dispatcher and bounce intake need
    no row back."""
    insert = dialect_insert(session)
    address = await stored_address(session, email)
    await session.execute(
        insert(Suppression)
        .values(
            email=address,
            reason=reason,
            # A bounce's text quotes the address: not kept for someone erased.
            detail=None if address != email.lower() else detail,
            created_at=func.now(),
        )
        .on_conflict_do_nothing(index_elements=["email"])
    )


async def get_suppression(session: AsyncSession, email: str) -> Suppression | None:
    stored = email if email.startswith(DIGEST_PREFIX) else email.lower()
    return (
        await session.execute(select(Suppression).where(Suppression.email == stored))
    ).scalar_one_or_none()


async def list_suppressions(
    session: AsyncSession,
    *,
    email: str | None,
    reason: str | None,
    before_id: int | None,
    limit: int,
    part: str | None = None,
) -> list[Suppression]:
    """Newest first, keyset-paged by id; `part` matches part of the address."""
    statement = select(Suppression).order_by(Suppression.id.desc()).limit(limit)
    if email:
        statement = statement.where(Suppression.email == email.lower())
    if part:
        pattern = containing(part.lower())
        statement = statement.where(Suppression.email.like(pattern, escape=LIKE_ESCAPE))
    if reason:
        statement = statement.where(Suppression.reason == reason)
    if before_id is not None:
        statement = statement.where(Suppression.id < before_id)
    return list((await session.execute(statement)).scalars())


@dataclass(frozen=True)
class Removed:
    """A suppression as it was when taken off the list."""

    email: str
    reason: str
    detail: str | None
    suppressed_at: datetime


def _address_matches(email: str) -> object:
    # An erased customer's entry holds the digest of the address (app/privacy.py).
    return Suppression.email.in_([email.lower(), email_digest(email)])


async def remove_address(session: AsyncSession, email: str) -> Removed | None:
    """Take the address off the list; None when it was not on it."""
    row = (
        await session.execute(
            delete(Suppression)
            .where(_address_matches(email))  # type: ignore[arg-type]
            .returning(
                Suppression.email, Suppression.reason, Suppression.detail, Suppression.created_at
            )
            .execution_options(synchronize_session=False)
        )
    ).first()
    return Removed(*row) if row is not None else None


def _matching(reason: str | None, since: datetime | None, until: datetime | None) -> list[object]:
    where: list[object] = []
    if reason is not None:
        where.append(Suppression.reason == reason)
    if since is not None:
        where.append(Suppression.created_at >= since)
    if until is not None:
        where.append(Suppression.created_at < until)
    return where


async def count_matching(
    session: AsyncSession, *, reason: str | None, since: datetime | None, until: datetime | None
) -> dict[str, int]:
    """How many entries per reason a bulk removal with these filters would take."""
    rows = await session.execute(
        select(Suppression.reason, func.count())
        .where(*_matching(reason, since, until))  # type: ignore[arg-type]
        .group_by(Suppression.reason)
    )
    return {found: int(number) for found, number in rows}


async def remove_matching(
    session: AsyncSession,
    *,
    reason: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[Removed]:
    """Take off up to `limit` entries matching the filters, oldest first. DELETE .. RETURNING:
    exactly the rows deleted are returned, whatever is added meanwhile."""
    chosen = (
        select(Suppression.id)
        .where(*_matching(reason, since, until))  # type: ignore[arg-type]
        .order_by(Suppression.id)
        .limit(limit)
    )
    rows = await session.execute(
        delete(Suppression)
        .where(Suppression.id.in_(chosen.scalar_subquery()))
        .returning(
            Suppression.email, Suppression.reason, Suppression.detail, Suppression.created_at
        )
        .execution_options(synchronize_session=False)
    )
    return [Removed(*row) for row in rows]


async def record_removals(
    session: AsyncSession,
    removed: Sequence[Removed],
    *,
    source: str,
    note: str | None,
    now: datetime,
) -> None:
    if not removed:
        return
    await session.execute(
        insert(SuppressionRemoval),
        [
            {
                "email": row.email,
                "reason": row.reason,
                "detail": row.detail,
                "suppressed_at": row.suppressed_at,
                "removed_at": now,
                "source": source,
                "note": note,
            }
            for row in removed
        ],
    )


async def list_removals(
    session: AsyncSession, *, email: str | None, before_id: int | None, limit: int
) -> list[SuppressionRemoval]:
    """Newest first, keyset-paged by id."""
    statement = select(SuppressionRemoval).order_by(SuppressionRemoval.id.desc()).limit(limit)
    if email:
        statement = statement.where(
            SuppressionRemoval.email.in_([email.lower(), email_digest(email)])
        )
    if before_id is not None:
        statement = statement.where(SuppressionRemoval.id < before_id)
    return list((await session.execute(statement)).scalars())


async def forget_removed_address(session: AsyncSession, email: str) -> None:
    """Erasure: keep the removal records, with the digest in place of the address."""
    await session.execute(
        update(SuppressionRemoval)
        .where(SuppressionRemoval.email == email.lower())
        .values(email=email_digest(email), detail=None, note=None)
        .execution_options(synchronize_session=False)
    )
