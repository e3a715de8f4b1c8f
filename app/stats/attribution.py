"""Which message an order is credited to (pure, no I/O): the message whose coupon code it
used, else the last touch within the window.

An order converts for the message whose human click (or open, when opens count) came last
before the order, within the attribution window. Without such a touch, a held-out message of
the customer due within the window before the order makes it a control conversion: the
holdout group's conversion rate is what a rule's lift is measured against.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

AttributionVia = Literal["click", "click_or_open"]


class Via(enum.StrEnum):
    """How an order came to be credited to a message."""

    CLICK = "click"
    OPEN = "open"
    HOLDOUT = "holdout"  # a control conversion: the customer was held out, not mailed
    COUPON = "coupon"  # the order used a coupon code the message carried


@dataclass(frozen=True)
class AttributionPolicy:
    """AFTERSALE_ATTRIBUTION_WINDOW_DAYS and AFTERSALE_ATTRIBUTION_VIA."""

    window: timedelta
    count_opens: bool

    @classmethod
    def of(cls, *, window_days: int, via: AttributionVia) -> AttributionPolicy:
        return cls(window=timedelta(days=window_days), count_opens=via == "click_or_open")


@dataclass(frozen=True)
class Touch:
    """The latest human click (or open) on one message of the customer."""

    message_id: int
    via: Literal[Via.CLICK, Via.OPEN]
    at: datetime


@dataclass(frozen=True)
class HeldOutMessage:
    message_id: int
    send_at: datetime


@dataclass(frozen=True)
class Redeemed:
    """A coupon code the order used, and the message that carried it."""

    message_id: int
    assigned_at: datetime


@dataclass(frozen=True)
class Credit:
    message_id: int
    via: Via


def credit(
    *,
    placed_at: datetime,
    touches: Sequence[Touch],
    held_out: Sequence[HeldOutMessage],
    policy: AttributionPolicy,
    redeemed: Sequence[Redeemed] = (),
) -> Credit | None:
    """The message the order placed at `placed_at` is credited to, if any.

    `touches` and `held_out` are the customer's, from messages of other orders. `redeemed`:
    the coupon codes of our mail the order used; they come first, whatever the window, as
    a code names the message that brought the order.
    """
    if redeemed:
        latest = max(redeemed, key=lambda r: (r.assigned_at, r.message_id))
        return Credit(message_id=latest.message_id, via=Via.COUPON)
    since = placed_at - policy.window
    eligible = [
        touch
        for touch in touches
        if since <= touch.at <= placed_at and (touch.via == Via.CLICK or policy.count_opens)
    ]
    if eligible:
        # The latest touch wins; at the same instant a click beats an open.
        last = max(eligible, key=lambda t: (t.at, t.via == Via.CLICK, t.message_id))
        return Credit(message_id=last.message_id, via=last.via)
    control = [message for message in held_out if since <= message.send_at <= placed_at]
    if control:
        last_held = max(control, key=lambda m: (m.send_at, m.message_id))
        return Credit(message_id=last_held.message_id, via=Via.HOLDOUT)
    return None
