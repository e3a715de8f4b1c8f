"""Stats API shapes. Every row has the same figures; docs/stats.md explains each one."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Bucket = Literal["day", "week"]

EXAMPLE_FIGURES: dict[str, Any] = {
    "planned": 130,
    "scheduled": 6,
    "sent": 100,
    "failed": 2,
    "bounced": 2,
    "bounced_async": 1,
    "soft_bounced": 3,
    "complained": 0,
    "skipped": 8,
    "cancelled": 3,
    "expired": 0,
    "held_out": 11,
    "opened": 41,
    "opens": 63,
    "opened_machine": 37,
    "opens_machine": 40,
    "opened_unknown": 5,
    "opens_unknown": 5,
    "clicked": 12,
    "clicks": 17,
    "clicked_machine": 4,
    "clicks_machine": 9,
    "clicked_unknown": 0,
    "clicks_unknown": 0,
    "unsubscribed": 1,
    "converted": 6,
    "conversions": 7,
    "held_out_converted": 0,
    "held_out_conversions": 0,
    "revenue": {"EUR": "348.60"},
    "nps": 35.0,
    "open_rate": 0.41,
    "click_rate": 0.12,
    "unsubscribe_rate": 0.01,
    "complaint_rate": 0.0,
    "conversion_rate": 0.06,
    "holdout_conversion_rate": 0.0,
    "lift": None,
}


def _count(description: str) -> Any:
    return Field(ge=0, description=description)


def _rate(description: str) -> Any:
    return Field(description=f"{description}; null when the divisor is 0")


class StatsFigures(BaseModel):
    """The counts of the messages of a span (sent in it, or, never sent, due in it)."""

    planned: int = _count("messages planned: the sum of the seven statuses below")
    scheduled: int = _count("still waiting to be sent (scheduled or sending)")
    sent: int = _count("sent")
    failed: int = _count("failed (bounced, retries exhausted, render errors)")
    bounced: int = _count(
        "hard bounces: refused at sending (also in `failed`) or reported later by DSN or a "
        "provider webhook (`bounced_async`, also in `sent`)"
    )
    bounced_async: int = _count(
        "of `bounced`, the sent messages whose hard bounce was reported after acceptance"
    )
    soft_bounced: int = _count(
        "sent messages reported delayed or soft-bounced (mailbox full, policy refusal)"
    )
    complained: int = _count("sent messages their recipient marked as spam (ARF, webhooks)")
    skipped: int = _count("skipped by a check (consent, suppression, rebought, caps)")
    cancelled: int = _count("cancelled by an event or an operator")
    expired: int = _count("expired before they could be sent")
    held_out: int = _count("in the holdout group: planned, never sent")
    opened: int = _count("messages opened by a person (unique human opens)")
    opens: int = _count("human opens in all (total)")
    opened_machine: int = _count("messages opened by a machine (Apple's proxy, scanners, prefetch)")
    opens_machine: int = _count("machine opens in all")
    opened_unknown: int = _count("messages opened by an unclassified client")
    opens_unknown: int = _count("unclassified opens in all")
    clicked: int = _count("messages a person clicked in (unique human clicks)")
    clicks: int = _count("human clicks in all")
    clicked_machine: int = _count(
        "messages a machine clicked in (honeypot, HEAD, bursts, scanners)"
    )
    clicks_machine: int = _count("machine clicks in all")
    clicked_unknown: int = _count("messages clicked by an unclassified client")
    clicks_unknown: int = _count("unclassified clicks in all")
    unsubscribed: int = _count("messages after which their recipient unsubscribed")
    converted: int = _count("sent messages credited with at least one order")
    conversions: int = _count("orders credited to sent messages")
    held_out_converted: int = _count("held-out messages whose customer ordered within the window")
    held_out_conversions: int = _count("orders of held-out customers within the window")
    revenue: dict[str, str] = Field(
        description="the credited orders' totals by currency, as decimal strings"
    )
    nps: float | None = Field(
        default=None,
        description="net promoter score of the messages' survey answers (% answers 9-10 minus "
        "% answers 0-6, one decimal, each message's latest counted answer); null without "
        "answers",
    )
    open_rate: float | None = _rate("opened / sent")
    click_rate: float | None = _rate("clicked / sent")
    unsubscribe_rate: float | None = _rate("unsubscribed / sent")
    complaint_rate: float | None = _rate("complained / sent (Gmail and Yahoo want it below 0.003)")
    conversion_rate: float | None = _rate("converted / sent")
    holdout_conversion_rate: float | None = _rate("held_out_converted / held_out")
    lift: float | None = Field(
        description="conversion_rate / holdout_conversion_rate - 1; null when either is "
        "undefined or the holdout rate is 0"
    )


class _Span(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from", description="first day (UTC), inclusive")
    to: date = Field(description="last day (UTC), inclusive")
    rolled_up_at: datetime | None = Field(
        description="when the rollup job last ran: later events are not counted yet"
    )


class Overview(StatsFigures, _Span):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "2026-11-01",
                    "to": "2026-11-30",
                    "rolled_up_at": "2026-11-30T12:00:07Z",
                    **EXAMPLE_FIGURES,
                }
            ]
        }
    )


class _RuleKey(BaseModel):
    rule: str
    variant: str | None = Field(description="the variant's name; null for a rule without")
    template: str = Field(description="its template (several, comma-separated, if it changed)")


class RuleRow(StatsFigures, _RuleKey):
    pass


class RulesStats(_Span):
    rows: list[RuleRow] = Field(description="one row per rule and variant")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "2026-11-01",
                    "to": "2026-11-30",
                    "rolled_up_at": "2026-11-30T12:00:07Z",
                    "rows": [
                        {"rule": "thank-you", "variant": None, "template": "thank-you"}
                        | EXAMPLE_FIGURES
                    ],
                }
            ]
        }
    )


class _StepKey(BaseModel):
    rule: str
    variant: str | None = Field(description="the variant's name; null for a rule without")
    step: int = Field(
        ge=1,
        description="the message's place in the rule's sequence: 1 is the rule's own message, "
        "2... its `steps`; a rule without steps has only 1",
    )
    template: str = Field(description="its template (several, comma-separated, if it changed)")


class StepRow(StatsFigures, _StepKey):
    pass


class StepsStats(_Span):
    rows: list[StepRow] = Field(description="one row per rule, variant and step")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "2026-11-01",
                    "to": "2026-11-30",
                    "rolled_up_at": "2026-11-30T12:00:07Z",
                    "rows": [
                        {"rule": "diapers-restock", "variant": None, "step": 1}
                        | {"template": "diapers-restock"}
                        | EXAMPLE_FIGURES,
                        {"rule": "diapers-restock", "variant": None, "step": 2}
                        | {"template": "diapers-restock-nudge"}
                        | EXAMPLE_FIGURES,
                    ],
                }
            ]
        }
    )


class _TemplateKey(BaseModel):
    template: str


class TemplateRow(StatsFigures, _TemplateKey):
    pass


class TemplatesStats(_Span):
    rows: list[TemplateRow] = Field(description="one row per template")


class _BucketKey(BaseModel):
    start: date = Field(description="first day of the bucket (within the span)")
    end: date = Field(description="last day of the bucket (within the span)")


class BucketRow(StatsFigures, _BucketKey):
    pass


class Timeseries(_Span):
    rule: str
    variant: str | None = Field(description="the variant asked for; null: all variants")
    bucket: Bucket
    rows: list[BucketRow] = Field(description="one row per day or ISO week (Monday to Sunday)")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "2026-11-02",
                    "to": "2026-11-15",
                    "rolled_up_at": "2026-11-30T12:00:07Z",
                    "rule": "thank-you",
                    "variant": None,
                    "bucket": "week",
                    "rows": [
                        {"start": "2026-11-02", "end": "2026-11-08"} | EXAMPLE_FIGURES,
                        {"start": "2026-11-09", "end": "2026-11-15"} | EXAMPLE_FIGURES,
                    ],
                }
            ]
        }
    )


class MessageStats(BaseModel):
    """What the stats hold of one message (once the rollup job has seen it)."""

    message_id: int
    rule: str
    variant: str | None
    template: str
    day: date = Field(description="the day it is counted on: sent, or else due")
    status: str
    bounced: bool = Field(description="hard-bounced, at sending or reported later")
    bounced_async: bool = Field(description="its hard bounce was reported after sending")
    soft_bounced: bool
    complained: bool = Field(description="its recipient marked it as spam")
    opened: bool = Field(description="opened by a person")
    opens: int
    opens_machine: int
    opens_unknown: int
    clicked: bool = Field(description="clicked by a person")
    clicks: int
    clicks_machine: int
    clicks_unknown: int
    unsubscribed: bool
    conversions: int = Field(description="orders credited to it (held out: control orders)")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message_id": 1042,
                    "rule": "thank-you",
                    "variant": None,
                    "template": "thank-you",
                    "day": "2026-11-20",
                    "status": "sent",
                    "bounced": False,
                    "bounced_async": False,
                    "soft_bounced": False,
                    "complained": False,
                    "opened": True,
                    "opens": 2,
                    "opens_machine": 1,
                    "opens_unknown": 0,
                    "clicked": True,
                    "clicks": 1,
                    "clicks_machine": 0,
                    "clicks_unknown": 0,
                    "unsubscribed": False,
                    "conversions": 1,
                }
            ]
        }
    )
