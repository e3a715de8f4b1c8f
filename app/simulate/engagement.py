"""What people did with sent mail, as a replay's input may say: lines of ORDERS.jsonl such as

    {"type": "message.opened", "occurred_at": "2027-01-10T08:30:00Z",
     "order": {"id": "820982911946154601"}, "rule": "diapers-restock", "step": 1}

A person opened (or clicked in) the message that rule and step sent about that order (or,
for a rule without an order, to `customer: {"id": ...}`). A sequence's `if:` then sees it;
without such lines a replay assumes nobody opened or clicked anything. Likewise

    {"type": "review.answered", "occurred_at": "2027-01-10T08:30:00Z",
     "order": {"id": "820982911946154601"}, "rule": "product-review", "sku": "KF-DESK",
     "stars": 2}

is a person's stars on the review request that rule sent about that order (the item with
that SKU; without `sku`, the first it asked about): `review.answered` rules plan from it.
They are simulate's own: the webhook does not take them (the service learns opens and
clicks by tracking, and reviews on its review pages).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.file_import import BadLine

_ENGAGEMENT = re.compile(rb'"type"\s*:\s*"(message\.(opened|clicked)|review\.answered)"')


class _Ref(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=255)


class Engagement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["message.opened", "message.clicked"]
    occurred_at: AwareDatetime
    rule: str = Field(min_length=1, max_length=128)
    step: int = Field(default=1, ge=1, le=11)
    order: _Ref | None = None
    customer: _Ref | None = None

    @model_validator(mode="after")
    def _about_one_message(self) -> Engagement:
        if self.order is None and self.customer is None:
            raise ValueError("give the message's order (order.id) or, without one, customer.id")
        return self

    @property
    def kind(self) -> str:
        return self.type.removeprefix("message.")

    @property
    def about(self) -> str:
        """The shop's id of the order, else of the customer, the message was about."""
        ref = self.order or self.customer
        assert ref is not None
        return ref.id


class ReviewLine(BaseModel):
    """A person's stars (1-5) on a review request (rules with `review`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["review.answered"]
    occurred_at: AwareDatetime
    order: _Ref
    rule: str = Field(min_length=1, max_length=128, description="the review request's rule")
    sku: str | None = Field(default=None, min_length=1, max_length=255)
    stars: int = Field(ge=1, le=5)


def take_engagement(
    lines: list[bytes],
) -> tuple[list[Engagement | ReviewLine], list[BadLine]]:
    """The engagement lines of `lines` (opens, clicks, reviews), each blanked in place (so
    the bodies keep their line numbers), and the bad ones with their numbers."""
    found: list[Engagement | ReviewLine] = []
    bad: list[BadLine] = []
    for index, raw in enumerate(lines):
        match = _ENGAGEMENT.search(raw)
        if match is None:
            continue
        lines[index] = b""
        model = ReviewLine if match.group(1) == b"review.answered" else Engagement
        try:
            found.append(model.model_validate_json(raw))
        except ValidationError as exc:
            bad.extend(
                BadLine(index + 1, _describe(error["loc"], error["msg"])) for error in exc.errors()
            )
    return found, bad


def _describe(loc: Sequence[int | str], message: str) -> str:
    where = ".".join(str(part) for part in loc)
    return f"{where}: {message}" if where else message
