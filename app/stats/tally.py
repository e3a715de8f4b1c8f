"""What one message adds to the stats (pure, no I/O).

Each message is counted in one series (its rule, variant, template and step) on one day: the day
it was sent, or, never sent, the day it was due. Its opens, clicks, unsubscribe and
conversions count on that same day, whenever they happen, so the rates of a span describe
the messages of that span.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime

# The counters of stats_totals, in the order the API lists them.
COUNTERS = (
    "planned",
    "scheduled",
    "sent",
    "failed",
    "bounced",
    "bounced_async",
    "soft_bounced",
    "complained",
    "skipped",
    "cancelled",
    "expired",
    "held_out",
    "opened",
    "opens",
    "opened_machine",
    "opens_machine",
    "opened_unknown",
    "opens_unknown",
    "clicked",
    "clicks",
    "clicked_machine",
    "clicks_machine",
    "clicked_unknown",
    "clicks_unknown",
    "unsubscribed",
    "converted",
    "conversions",
    "held_out_converted",
    "held_out_conversions",
)

# Message status -> the counter it is in. `sending` and `paused` (its rule is missing for
# now) are still waiting, like `scheduled`.
_STATUS_COUNTERS = {
    "scheduled": "scheduled",
    "sending": "scheduled",
    "paused": "scheduled",
    "sent": "sent",
    "failed": "failed",
    "skipped": "skipped",
    "cancelled": "cancelled",
    "expired": "expired",
    "held_out": "held_out",
}
PENDING_STATUSES = ("scheduled", "sending", "paused")
HELD_OUT = "held_out"

# A message's own total of each kind and class of event -> the unique counter it makes.
_UNIQUE_COUNTERS = {
    "opens": "opened",
    "opens_machine": "opened_machine",
    "opens_unknown": "opened_unknown",
    "clicks": "clicked",
    "clicks_machine": "clicked_machine",
    "clicks_unknown": "clicked_unknown",
}


def event_total(kind: str, event_class: str) -> str:
    """Which of a message's totals an event adds to: `opens` are people's, and so on."""
    plural = "opens" if kind == "open" else "clicks"
    if event_class == "human":
        return plural
    return f"{plural}_machine" if event_class == "machine" else f"{plural}_unknown"


@dataclass(frozen=True)
class SeriesKey:
    rule_id: str
    variant: str  # '' when the rule has no variants
    template: str
    currency: str = ""  # '' for the series of counts
    step: int = 1  # its place in the rule's sequence: 1 for a rule without steps


@dataclass(frozen=True)
class MessageFacts:
    """What of a message decides where it is counted."""

    id: int
    rule_id: str
    variant: str | None
    template: str
    status: str
    status_reason: str | None
    send_at: datetime
    sent_at: datetime | None
    step: int = 1

    @property
    def series(self) -> SeriesKey:
        return SeriesKey(self.rule_id, self.variant or "", self.template, step=self.step)

    @property
    def day(self) -> date:
        moment = self.sent_at if self.status == "sent" and self.sent_at else self.send_at
        return moment.astimezone(UTC).date()

    @property
    def bounced(self) -> bool:
        return self.status == "failed" and self.status_reason == "hard_bounce"


@dataclass
class MessageTally:
    """One stats_messages row: where a message is counted, and its own counts."""

    message_id: int
    series_id: int
    day: date
    status: str
    bounced: bool = False
    # Reported after the server accepted the message (DSN, ARF, provider webhooks).
    bounced_async: bool = False
    soft_bounced: bool = False
    complained: bool = False
    opens: int = 0
    opens_machine: int = 0
    opens_unknown: int = 0
    clicks: int = 0
    clicks_machine: int = 0
    clicks_unknown: int = 0
    unsubscribed: bool = False
    conversions: int = 0


def contribution(tally: MessageTally) -> Counter[str]:
    """What the message adds to the running totals of its series on its day."""
    counts: Counter[str] = Counter(planned=1)
    status = _STATUS_COUNTERS.get(tally.status)
    if status is not None:
        counts[status] = 1
    if tally.bounced or tally.bounced_async:
        counts["bounced"] = 1
    if tally.bounced_async and not tally.bounced:
        counts["bounced_async"] = 1
    if tally.soft_bounced:
        counts["soft_bounced"] = 1
    if tally.complained:
        counts["complained"] = 1
    for total, unique in _UNIQUE_COUNTERS.items():
        value = getattr(tally, total)
        if value:
            counts[total] = value
            counts[unique] = 1
    if tally.unsubscribed:
        counts["unsubscribed"] = 1
    if tally.conversions:
        # A held-out customer's orders are the control group's, never the mail's.
        prefix = "held_out_" if tally.status == HELD_OUT else ""
        counts[f"{prefix}converted"] = 1
        counts[f"{prefix}conversions"] = tally.conversions
    return counts
