"""All SQL of tracking: the links of a message, the target a token names, the events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Message, TrackedLink, TrackingEvent
from app.tracking.classify import EventClass, EventKind, Reason


@dataclass(frozen=True)
class NewLink:
    position: int
    kind: str
    url: str | None
    nonce: str


_LINKS = cast(Table, TrackedLink.__table__)
_ADD_LINKS = insert(_LINKS).returning(_LINKS.c.id, sort_by_parameter_order=True)


async def add_links(
    session: AsyncSession, *, message_id: int, links: Sequence[NewLink], now: datetime
) -> list[int]:
    """Store the tracked links of one message; their ids, in the order given."""
    (ids,) = await add_message_links(session, [MessageLinks(message_id, links, now)])
    return ids


@dataclass(frozen=True)
class MessageLinks:
    message_id: int
    links: Sequence[NewLink]
    now: datetime


async def add_message_links(
    session: AsyncSession, messages: Sequence[MessageLinks]
) -> list[list[int]]:
    """Store the tracked links of several messages; per message, their ids in the order
    given. One INSERT … RETURNING for all of them, on the table: no ORM objects to track."""
    rows = [
        {
            "message_id": message.message_id,
            "position": link.position,
            "kind": link.kind,
            "url": link.url,
            "token_nonce": link.nonce,
            "created_at": message.now,
        }
        for message in messages
        for link in message.links
    ]
    if not rows:
        return [[] for _ in messages]
    ids = list((await session.execute(_ADD_LINKS, rows)).scalars())
    split, start = [], 0
    for message in messages:
        split.append(ids[start : start + len(message.links)])
        start += len(message.links)
    return split


@dataclass(frozen=True)
class LinkTarget:
    id: int
    message_id: int
    kind: str
    url: str | None
    nonce: str
    created_at: datetime
    sent_at: datetime | None


# Every open and click runs these: built once, on the tables, with parameters. Building,
# keying and passing a statement through the ORM per request cost a public hit about as
# much as running it.
_MESSAGES = cast(Table, Message.__table__)
_EVENTS = cast(Table, TrackingEvent.__table__)
_LINK_TARGET = (
    select(
        _LINKS.c.id,
        _LINKS.c.message_id,
        _LINKS.c.kind,
        _LINKS.c.url,
        _LINKS.c.token_nonce,
        _LINKS.c.created_at,
        _MESSAGES.c.sent_at,
    )
    .join(_MESSAGES, _MESSAGES.c.id == _LINKS.c.message_id)
    .where(_LINKS.c.id == bindparam("link_id"))
)
_LINK_TARGET_LOCKED = _LINK_TARGET.with_for_update(of=_MESSAGES)
_ADD_EVENT = insert(_EVENTS)
_OTHER_LINKS_CLICKED = select(func.count(func.distinct(_EVENTS.c.link_id))).where(
    _EVENTS.c.message_id == bindparam("message_id"),
    _EVENTS.c.kind == EventKind.CLICK.value,
    _EVENTS.c.occurred_at >= bindparam("since"),
    _EVENTS.c.link_id != bindparam("link_id"),
)


async def get_link_target(
    session: AsyncSession, link_id: int, *, lock_message: bool = False
) -> LinkTarget | None:
    """The link a token names, with its message's send time.

    `lock_message` holds the message row until the transaction ends (PostgreSQL; SQLite
    serializes writers anyway), so clicks on one message are recorded one after another
    and each sees the ones before it: a burst of parallel scanner clicks cannot hide.
    """
    statement = _LINK_TARGET_LOCKED if lock_message else _LINK_TARGET
    row = (await session.execute(statement, {"link_id": link_id})).one_or_none()
    return None if row is None else LinkTarget(*row)


async def add_event(
    session: AsyncSession,
    *,
    message_id: int,
    kind: EventKind,
    link_id: int | None,
    occurred_at: datetime,
    event_class: EventClass,
    reason: Reason,
    user_agent: str | None,
    ip: str | None,
    method: str,
) -> None:
    await session.execute(
        _ADD_EVENT,
        {
            "message_id": message_id,
            "kind": kind.value,
            "link_id": link_id,
            "occurred_at": occurred_at,
            "class": event_class.value,
            "reason": reason.value,
            "user_agent": user_agent,
            "ip": ip,
            "method": method,
        },
    )


async def other_links_clicked_since(
    session: AsyncSession, *, message_id: int, link_id: int, since: datetime
) -> int:
    """How many different links of the message, other than `link_id`, were clicked since."""
    found = await session.execute(
        _OTHER_LINKS_CLICKED, {"message_id": message_id, "since": since, "link_id": link_id}
    )
    return int(found.scalar_one())


async def mark_click_burst(session: AsyncSession, *, message_id: int, since: datetime) -> None:
    """Every click of the message since `since` was the scanner's, the ones before this too."""
    await session.execute(
        update(TrackingEvent)
        .where(
            TrackingEvent.message_id == message_id,
            TrackingEvent.kind == EventKind.CLICK.value,
            TrackingEvent.occurred_at >= since,
            TrackingEvent.class_ != EventClass.MACHINE.value,
        )
        .values(class_=EventClass.MACHINE.value, reason=Reason.CLICK_BURST.value)
        .execution_options(synchronize_session=False)
    )
