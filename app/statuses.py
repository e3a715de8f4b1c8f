"""The values the status and kind columns store, as plain enums (pure, no I/O).

They live here rather than in app/models.py so the planner and the other pure decisions can
name them without importing SQLAlchemy; app.models re-exports them for everyone else.
"""

from __future__ import annotations

import enum


class OrderStatus(enum.StrEnum):
    OPEN = "open"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class MessageStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    EXPIRED = "expired"
    # In the rule's control group: planned so stats can compare, never sent.
    HELD_OUT = "held_out"
    # Waiting, not claimable: its rule is missing from the loaded rules (`rule_missing`).
    # Scheduled again when the rule comes back, cancelled after RULE_GRACE.
    PAUSED = "paused"


class MessageKind(enum.StrEnum):
    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class FeedbackKind(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"


class EventKind(enum.StrEnum):
    OPEN = "open"
    CLICK = "click"
    ANSWER = "answer"  # a one-click survey answer (app/survey/)


class EventClass(enum.StrEnum):
    HUMAN = "human"
    MACHINE = "machine"
    UNKNOWN = "unknown"
