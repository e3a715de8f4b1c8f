"""Run a platform's mapper the way intake does, for tests of the pure mapping."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.config import Settings
from app.events import Envelope
from app.intake.payloads import run_mapper
from app.intake.platform import MapContext, Platform


def map_events(
    platform: Platform,
    topic: str,
    payload: dict[str, Any],
    *,
    event_id: str,
    received_at: datetime,
    settings: Settings | None = None,
) -> list[Envelope]:
    """The events of one delivery, in the order intake applies them (none: not for us)."""
    mapper = platform.mappers.get(topic)
    if mapper is None:
        return []
    context = MapContext(
        event_id=event_id,
        received_at=received_at,
        settings=settings or Settings(env="development", _env_file=None),  # type: ignore[call-arg]
    )
    return run_mapper(mapper, topic, payload, context)


def map_event(platform: Platform, topic: str, payload: dict[str, Any], **given: Any) -> Any:
    """The one event of a delivery that maps to at most one; None when it maps to none."""
    events = map_events(platform, topic, payload, **given)
    assert len(events) <= 1, [event.type for event in events]
    return events[0] if events else None
