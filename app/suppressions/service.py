"""Taking addresses off the suppression list (the undo of a wrong suppression), recorded.

Every removal leaves a `suppression_removals` row: the address, what the entry said (reason,
detail, when) and who removed it (cli, api, page) with an optional note. Removing an old
`unsubscribe` entry (made when unsubscribing still stopped all mail) lets order mail through
again but keeps marketing off: the customer asked for that, and removing the entry must not
subscribe anyone.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.consent import ConsentSource, withdraw_marketing
from app.models import SuppressionReason
from app.suppressions import repository
from app.suppressions.repository import Removed

# Rows deleted and recorded per statement pair in a bulk removal.
CHUNK = 1000


class RemovalSource(enum.StrEnum):
    CLI = "cli"
    API = "api"
    PAGE = "page"  # the customer's own undo of "stop all email"
    CONSOLE = "console"  # an operator, signed in to the console


@dataclass
class RemovalReport:
    """What a removal took (or, in a dry run, would take) off the list, per reason."""

    dry_run: bool
    by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def removed(self) -> int:
        return sum(self.by_reason.values())


async def remove_address(
    session: AsyncSession,
    *,
    email: str,
    source: RemovalSource,
    note: str | None,
    now: datetime,
    only_reason: str | None = None,
) -> Removed | None:
    """Take one address off the list; None when it was not on it (or, with `only_reason`,
    was on it for another reason, and stays)."""
    if only_reason is not None:
        existing = await repository.get_suppression(session, email)
        if existing is None or existing.reason != only_reason:
            return None
    removed = await repository.remove_address(session, email)
    if removed is not None:
        await _recorded(session, [removed], source=source, note=note, now=now)
    return removed


async def remove_matching(
    session: AsyncSession,
    *,
    reason: str | None,
    since: datetime | None,
    until: datetime | None,
    source: RemovalSource,
    note: str | None,
    now: datetime,
    dry_run: bool,
) -> RemovalReport:
    """Take off every entry with this reason, made in [since, until). At least one of
    `reason` and `since` is required: the whole list is never one mistyped command away."""
    if reason is None and since is None:
        raise ValueError("give a reason, a since time, or both")
    if since is not None and until is not None and until <= since:
        raise ValueError("until must be later than since")
    if dry_run:
        counts = await repository.count_matching(session, reason=reason, since=since, until=until)
        return RemovalReport(dry_run=True, by_reason=counts)
    tally: Counter[str] = Counter()
    while True:
        removed = await repository.remove_matching(
            session, reason=reason, since=since, until=until, limit=CHUNK
        )
        await _recorded(session, removed, source=source, note=note, now=now)
        tally.update(row.reason for row in removed)
        if len(removed) < CHUNK:
            break
    return RemovalReport(dry_run=False, by_reason=dict(tally))


async def _recorded(
    session: AsyncSession,
    removed: Sequence[Removed],
    *,
    source: RemovalSource,
    note: str | None,
    now: datetime,
) -> None:
    await repository.record_removals(session, removed, source=source, note=note, now=now)
    unsubscribed = [row.email for row in removed if row.reason == SuppressionReason.UNSUBSCRIBE]
    if unsubscribed:
        await withdraw_marketing(
            session, emails=unsubscribed, shop=None, source=ConsentSource.LIST_REMOVAL, now=now
        )
