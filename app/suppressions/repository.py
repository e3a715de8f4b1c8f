"""All SQL of the suppression list. Addresses are stored and compared lower-cased."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.models import Suppression


async def add_suppression(
    session: AsyncSession, *, email: str, reason: str, detail: str | None, now: datetime
) -> tuple[Suppression, bool]:
    """The address's suppression and whether this call created it.

    An address already suppressed keeps its first reason: a later unsubscribe must not
    hide that it once bounced. ON CONFLICT makes concurrent calls for one address safe.
    """
    email = email.lower()
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


async def get_suppression(session: AsyncSession, email: str) -> Suppression | None:
    return (
        await session.execute(select(Suppression).where(Suppression.email == email.lower()))
    ).scalar_one_or_none()


async def list_suppressions(
    session: AsyncSession,
    *,
    email: str | None,
    reason: str | None,
    before_id: int | None,
    limit: int,
) -> list[Suppression]:
    """Newest first, keyset-paged by id."""
    statement = select(Suppression).order_by(Suppression.id.desc()).limit(limit)
    if email:
        statement = statement.where(Suppression.email == email.lower())
    if reason:
        statement = statement.where(Suppression.reason == reason)
    if before_id is not None:
        statement = statement.where(Suppression.id < before_id)
    return list((await session.execute(statement)).scalars())


async def delete_suppression(session: AsyncSession, email: str) -> bool:
    """Remove the address from the list; False when it was not on it."""
    result = await session.execute(
        delete(Suppression)
        .where(Suppression.email == email.lower())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
