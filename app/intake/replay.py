"""Replaying failed deliveries: map and ingest them again with the current code and rules.

Apart from `service.py` because it finds a delivery's platform in the registry, which
imports the platform modules, which use the service.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.intake import repository
from app.intake.payloads import PayloadError
from app.intake.registry import platform_of
from app.intake.service import Outcome, map_and_ingest, stored_delivery
from app.models import IntakeFailure, WebhookDelivery
from app.rules.loader import RuleSet


async def replay_failure(
    session: AsyncSession, *, failure_id: int, rules: RuleSet, settings: Settings, now: datetime
) -> Outcome | None:
    """Map and ingest a failed delivery again with the current code and rules; None when
    there is no such failure. A resolved one is not ingested twice: `duplicate`."""
    found = await repository.failure_with_delivery(session, failure_id)
    if found is None:
        return None
    failure, stored = found
    if failure.replayed_at is not None:
        return Outcome(
            status="duplicate",
            delivery_id=stored.delivery_id,
            reason=f"resolved at {failure.replayed_at.isoformat()}: {failure.replay_result}",
            failure_id=failure.id,
        )
    if not stored.body:
        # Erased with its shop or customer: there is nothing left to map.
        return await _still_failing(
            session, failure, stored, "the raw body was erased; nothing to replay"
        )
    delivery = stored_delivery(stored)
    platform = platform_of(stored.source)
    if platform is None:
        return await _still_failing(
            session, failure, stored, f"no platform {stored.source!r} maps this delivery"
        )
    return await map_and_ingest(
        session,
        platform=platform,
        delivery=delivery,
        row=stored.id,
        failure=failure,
        # The time it arrived stands in, as the time it was sent did then.
        received_at=stored.received_at,
        rules=rules,
        settings=settings,
        now=now,
        resolved_by="replayed",
    )


async def _still_failing(
    session: AsyncSession, failure: IntakeFailure, stored: WebhookDelivery, error: str
) -> Outcome:
    failure.attempts += 1
    failure.error = error
    await session.flush()
    return Outcome(
        status="unmapped",
        delivery_id=stored.delivery_id,
        reason=error,
        error=PayloadError(error),
        failure_id=failure.id,
    )
