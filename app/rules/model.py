"""The rule file format (see docs/rules.md). Unknown keys are errors: a typo must not pass."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import re
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from app.rules.categories import category_path, label, under
from app.rules.durations import (
    DURATION_PATTERN,
    RANGE_PATTERN,
    Duration,
    DurationRange,
    parse_duration,
    parse_range,
)
from app.rules.facts import CustomerFacts, ItemFacts
from app.rules.windows import SendWindow, parse_send_window

EventType = Literal[
    "order.created",
    "order.fulfilled",
    "order.delivered",
    "birthday",
    "customer.created",
    "customer.lapsed",
    "review.answered",
]
ORDER_EVENTS = ("order.created", "order.fulfilled", "order.delivered")
# About the customer, not an order: timed with `after` from the event, like order events.
CUSTOMER_EVENTS = ("customer.created", "customer.lapsed")
# A product review that came in (app/reviews): timed with `after` from the answer.
REVIEW_ANSWERED = "review.answered"
# The events a `review` request goes out after: the order is in the customer's hands.
REVIEW_EVENTS = ("order.fulfilled", "order.delivered")
# Its `fallback` is the timing from fulfilment when no delivery is ever reported.
DELIVERED = "order.delivered"
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}$")
# A rule's `links`: names a template can write as `links.NAME`, targets that open in a browser.
_LINK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_WEB_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Durations are text checked by `parse_duration`/`parse_range`; the pattern is only for
# editors, which then flag `2 weeks` or `1.5d` as they are typed.
DurationText = Annotated[str, WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN})]
DurationRangeText = Annotated[str, WithJsonSchema({"type": "string", "pattern": RANGE_PATTERN})]


class NumberRange(_Strict):
    min: Decimal | None = Field(default=None, description="inclusive lower bound")
    max: Decimal | None = Field(default=None, description="inclusive upper bound")

    @model_validator(mode="after")
    def _not_empty(self) -> NumberRange:
        # `{}` filters nothing and `{min: 100, max: 10}` matches nothing: both are slips.
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both, e.g. {min: 10, max: 100}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"empty range: min {self.min} is above max {self.max}")
        return self

    def contains(self, value: Decimal | int | None) -> bool:
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class ItemFilter(_Strict):
    """Which items a rule is about.

    `sku`, `category`, `product_type`, `vendor` and `tag` select: an item matches when any
    one listed value matches (SKU globs, category prefixes, types, vendors, exact tags).
    `price` and `quantity` constrain: each given range must hold as well. Categories, types,
    vendors and tags are the item's catalog product's too (`app/rules/facts.py`).
    """

    sku: list[str] = Field(default_factory=list, description="SKU globs, e.g. DIAPER-*")
    category: list[str] = Field(
        default_factory=list,
        description="category path prefixes, e.g. baby/diapers or "
        "'Baby & Toddler > Diapering' (case, accents and punctuation do not count)",
    )
    product_type: list[str] = Field(
        default_factory=list, description="product types, any case, e.g. Windeln"
    )
    vendor: list[str] = Field(
        default_factory=list, description="vendors or brands, any case, e.g. Lillydoo"
    )
    tag: list[str] = Field(
        default_factory=list, description="item or product tags, exactly, e.g. organic"
    )
    price: NumberRange | None = Field(default=None, description="unit price range")
    quantity: NumberRange | None = Field(
        default=None, description="range of the item's quantity (whole numbers)"
    )

    @field_validator("quantity")
    @classmethod
    def _whole_quantity(cls, value: NumberRange | None) -> NumberRange | None:
        # Quantities are whole numbers: {min: 2.5, max: 2.9} would never match an item.
        if (
            value is not None
            and value.min is not None
            and value.max is not None
            and math.ceil(value.min) > math.floor(value.max)
        ):
            raise ValueError(
                f"empty range: no whole quantity lies between {value.min} and {value.max}"
            )
        return value

    @field_validator("category")
    @classmethod
    def _paths(cls, values: list[str]) -> list[str]:
        for value in values:
            if not category_path(value):
                raise ValueError(f"category {value!r} has no letter or digit")
        return values

    def matches(self, item: ItemFacts) -> bool:
        if self.price is not None and not self.price.contains(item.unit_price):
            return False
        if self.quantity is not None and not self.quantity.contains(item.quantity):
            return False
        sku_pattern, tags, prefixes, types, vendors = self._compiled
        if sku_pattern is None and not (tags or prefixes or types or vendors):
            return True
        if item.sku and sku_pattern is not None and sku_pattern.match(item.sku):
            return True
        if tags and not tags.isdisjoint(item.tags):
            return True
        if types and item.product_type is not None and label(item.product_type) in types:
            return True
        if vendors and item.vendor is not None and label(item.vendor) in vendors:
            return True
        return bool(prefixes) and any(under(path, prefixes) for path in item.categories)

    @cached_property
    def _compiled(
        self,
    ) -> tuple[
        re.Pattern[str] | None, frozenset[str], tuple[str, ...], frozenset[str], frozenset[str]
    ]:
        # Asked for every item of every order against every rule: the globs become one
        # regular expression and the other values their compared forms, once.
        sku = (
            re.compile("|".join(fnmatch.translate(glob) for glob in self.sku)) if self.sku else None
        )
        return (
            sku,
            frozenset(self.tag),
            tuple(category_path(value) for value in self.category),
            frozenset(label(value) for value in self.product_type),
            frozenset(label(value) for value in self.vendor),
        )


class OrderFilter(_Strict):
    total: NumberRange | None = Field(default=None, description="order total range")
    currency: list[str] = Field(default_factory=list, description="ISO codes, e.g. [EUR]")

    def matches(self, *, total: Decimal | None, currency: str | None) -> bool:
        if self.total is not None and not self.total.contains(total):
            return False
        return not self.currency or currency in self.currency


class SpentRange(NumberRange):
    currency: str = Field(
        pattern=r"^[A-Z]{3}$",
        description="the ISO code of the totals, e.g. EUR; orders in other currencies do not count",
    )


class CustomerFilter(_Strict):
    """Every given list must match (any one value within a list), and each given range."""

    locale: list[str] = Field(default_factory=list, description="e.g. [ru] matches ru and ru-RU")
    country: list[str] = Field(default_factory=list, description="ISO codes, e.g. [DE, AT]")
    tags: list[str] = Field(default_factory=list, description="customer tags, e.g. [vip]")
    orders: NumberRange | None = Field(
        default=None,
        description="how many orders the customer has placed, this one included (cancelled "
        "and refunded ones do not count), e.g. {min: 3}",
    )
    spent: SpentRange | None = Field(
        default=None,
        description="what the customer has spent in all, this order included (cancelled and "
        "refunded orders do not count), in one currency, e.g. {currency: EUR, min: 500}",
    )

    @property
    def needs_totals(self) -> bool:
        """Whether matching needs the customer's order count and spending."""
        return self.orders is not None or self.spent is not None

    def matches(self, customer: CustomerFacts | None) -> bool:
        if customer is None:
            return not (self.locale or self.country or self.tags or self.needs_totals)
        if self.orders is not None and not self.orders.contains(customer.orders):
            return False
        if self.spent is not None and not self.spent.contains(
            None if customer.spent is None else customer.spent.get(self.spent.currency, 0)
        ):
            return False
        language = (customer.locale or "").replace("_", "-").lower()
        if self.locale and not any(
            language == wanted.lower() or language.startswith(wanted.lower() + "-")
            for wanted in self.locale
        ):
            return False
        if self.country and customer.country not in self.country:
            return False
        return not self.tags or any(tag in customer.tags for tag in self.tags)


class When(_Strict):
    event: EventType = Field(
        description="what starts the rule: an order placed, fulfilled (shipped) or delivered, "
        "a customer's birthday, a new customer (customer.created) or a regular who went quiet "
        "(customer.lapsed: no order for their usual interval)"
    )
    items: ItemFilter | None = Field(
        default=None, description="only orders with a matching item; its items are the mail's"
    )
    order: OrderFilter | None = Field(default=None, description="only orders that match")
    customer: CustomerFilter | None = Field(default=None, description="only customers who match")
    first_order: bool | None = Field(
        default=None, description="true: only a customer's first order; false: only repeats"
    )
    first_in_category: bool | None = Field(
        default=None,
        description="true: only items of a category the customer has not bought before (their "
        "first diapers, not their first order); false: only items of a category bought before",
    )

    @model_validator(mode="after")
    def _filters_fit_the_event(self) -> When:
        if self.event not in ORDER_EVENTS and (
            self.items is not None
            or self.order is not None
            or self.first_order is not None
            or self.first_in_category is not None
        ):
            raise ValueError(
                "items, order, first_order and first_in_category apply to order events, "
                f"not {self.event}"
            )
        if self.event not in ORDER_EVENTS and self.customer and self.customer.needs_totals:
            hint = (
                "; the rule's if: {orders: ...} counts them when the mail falls due"
                if self.event in CUSTOMER_EVENTS
                else ""
            )
            raise ValueError(
                f"customer orders and spent apply to order events, not {self.event}{hint}"
            )
        return self


class Supply(_Strict):
    """Quantity-aware replenishment: quantity × days_per_unit, less a lead time."""

    days_per_unit: float = Field(
        gt=0, le=3650, description="how many days one unit lasts, e.g. 75 (decimals allowed)"
    )
    lead: DurationText = Field(default="0d", description="how long before running out, e.g. 7d")

    @field_validator("lead")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class SendWindowSpec(_Strict):
    """When mail may arrive, in the customer's time zone.

    Example: `{days: mon-sat, hours: "09:00-20:00"}`; hours may cross midnight.
    """

    days: str | list[str] | None = Field(
        default=None,
        description="allowed local days: mon-fri, sat,sun or a list; every day when left out",
        examples=["mon-sat", ["sat", "sun"]],
    )
    hours: str | None = Field(
        default=None,
        description="allowed local hours, HH:MM-HH:MM (may cross midnight); all day when left out",
        examples=["09:00-20:00", "22:00-06:00"],
    )

    @model_validator(mode="after")
    def _parses(self) -> SendWindowSpec:
        parse_send_window(self.days, self.hours)
        return self

    @cached_property  # asked for every planned message; parsing it each time was a hotspot
    def window(self) -> SendWindow:
        return parse_send_window(self.days, self.hours)


class Fallback(_Strict):
    after: DurationRangeText = Field(
        description="with an anchor: the delay after the event when no anchor date is known; "
        "on order.delivered: the delay after fulfilment when no delivery is reported"
    )

    @field_validator("after")
    @classmethod
    def _range(cls, value: str) -> str:
        parse_range(value)
        return value


def _percent(value: object) -> object:
    # "10%" is what marketers write; a bare 10 means the same.
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1])
        except ValueError:
            raise ValueError(f"bad percentage {value!r}, e.g. 10%") from None
    return value


# A share as a rule writes it: "14%" or 14.
_PERCENT_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"},
            {"type": "number", "minimum": 0, "exclusiveMaximum": 100},
        ]
    }
)


class Learned(_Strict):
    """Time a reminder from observed repurchase gaps (see docs/rules.md, "Learned intervals")."""

    fallback: DurationRangeText = Field(
        description="the delay while nothing is known yet, placed by quantity like `after`",
        examples=["4w..5w"],
    )
    lead: DurationText = Field(
        default="7d", description="how long before the expected repurchase to send, e.g. 7d"
    )
    min_chance: Annotated[
        float | None,
        BeforeValidator(_percent),
        _PERCENT_SCHEMA,
    ] = Field(
        default=None,
        ge=0,
        lt=100,
        description=(
            "time the reminder for the best chance that the customer rebuys within `lead` "
            "after it, and send none when that chance is below this percentage"
        ),
        examples=["15%"],
    )

    @field_validator("fallback")
    @classmethod
    def _range(cls, value: str) -> str:
        parse_range(value)
        return value

    @field_validator("lead")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value).months:
            raise ValueError("give the lead in d, w or h (months vary in length)")
        return value


class Send(_Strict):
    anchor: str | None = Field(
        default=None,
        pattern=r"^(customer|item)(\.[a-z_][a-z0-9_]*(\[\])?)+$",
        description="a date to count from: customer.birthday, "
        "customer.attributes.children[].birth_date (one message per child), "
        "item.attributes.<name>",
        examples=["customer.attributes.children[].birth_date"],
    )
    fallback: Fallback | None = Field(
        default=None,
        description="timing when the anchor has no date, e.g. {after: 5y}; on order.delivered, "
        "timing from fulfilment when no delivery is reported, e.g. {after: 7d}",
    )
    after: DurationRangeText | None = Field(
        default=None,
        description="delay after the event: 0m, 3d, or a range 1w..2w placed by quantity",
        examples=["0m", "3d", "1w..2w", "2mo..3mo"],
    )
    supply: Supply | None = Field(
        default=None, description="timing by quantity × days_per_unit, less a lead time"
    )
    learned: Learned | None = Field(
        default=None, description="from this customer's and this product's repurchase gaps"
    )
    at: DurationText | None = Field(
        default=None,
        description="for date events: offset from the date, e.g. -3d (three days before)",
        examples=["-3d", "0d", "+1w"],
    )
    time: str | None = Field(
        default=None,
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="local time of day to send, in the customer's time zone",
        examples=["10:00"],
    )
    expires: DurationText | None = Field(
        default=None, description="not sent when later than send time plus this, e.g. 5d"
    )

    @field_validator("after")
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        if value is not None:
            parse_range(value)
        return value

    @field_validator("time", mode="before")
    @classmethod
    def _unquoted_time(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted 10:00 as the base-60 number 600: take it back.
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
            return f"{value // 60:02d}:{value % 60:02d}"
        return value

    @field_validator("expires", "at")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _one_timing(self) -> Send:
        given = [
            key for key in ("after", "supply", "learned", "at") if getattr(self, key) is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"use one of 'after', 'supply', 'learned' and 'at', not {' and '.join(given)}"
            )
        return self

    @property
    def delay(self) -> DurationRange:
        return parse_range(self.after or "0m")

    @property
    def expiry(self) -> Duration | None:
        return parse_duration(self.expires) if self.expires else None


class Limit(_Strict):
    """At most `max` messages in any `per` span, per customer."""

    max: int = Field(ge=1, le=1000, description="messages allowed in the span")
    per: DurationText = Field(description="the span, e.g. 7d or 1mo", examples=["7d", "30d"])

    @field_validator("per")
    @classmethod
    def _duration(cls, value: str) -> str:
        span = parse_duration(value)
        if span.months < 0 or span.seconds < 0 or (span.months == 0 and span.seconds == 0):
            raise ValueError("the span must be positive, e.g. 7d")
        return value

    @property
    def span(self) -> Duration:
        return parse_duration(self.per)


class Coupon(_Strict):
    """One unused code of a pool for each message, taken when it is sent (docs/rules.md,
    "Coupons"); the template shows it as `{{ coupon.code }}`."""

    pool: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="the pool, as imported with `aftersale coupons import POOL FILE`",
        examples=["BIRTHDAY"],
    )
    when_empty: Literal["skip", "send"] = Field(
        default="skip",
        description="no code left: skip the message (reason coupon_pool_empty), or send it "
        "without a code (`coupon` is null)",
    )


class SurveyReward(_Strict):
    """A thank-you for an answer: once a person answers (first answer only), the customer is
    sent `template` with a code from the coupon's pool (docs/rules.md, "Surveys")."""

    coupon: Coupon = Field(
        description="the pool of the thank-you codes; `when_empty` as for the rule's coupon",
        examples=[{"pool": "THANKS"}],
    )
    template: str = Field(
        default="survey-reward",
        description="the thank-you mail, a template folder under templates/email",
    )

    @field_validator("template")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("use lower-case letters, digits, '-' and '_' (max 128)")
        return value


class Survey(_Strict):
    """The survey the rule's mail carries (`{{ survey.links }}`): its kind and scale, how
    its silent count in the loyalty index, and a reward (docs/rules.md, "Surveys")."""

    kind: Literal["nps", "csat", "ces"] = Field(
        default="nps",
        description="nps: would you recommend us, 0-10; csat: how satisfied, 1-5; ces: how "
        "easy, 1-7 (7 = very easy)",
    )
    silent_weight: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="how much each survey sent and not answered counts against the loyalty "
        "index, as a share of a negative answer (0: not at all, 1: as a negative answer)",
    )
    reward: SurveyReward | None = Field(
        default=None,
        description="a coupon mailed once the survey is answered, e.g. {coupon: {pool: THANKS}}",
    )


class Recommend(_Strict):
    """Products from the catalog for the template's `recommendations`, picked at send time
    (docs/rules.md, "Recommendations")."""

    count: int = Field(default=3, ge=1, le=12, description="how many products, at most")
    from_: Literal["co_purchase", "same_category", "new_arrivals"] = Field(
        default="co_purchase",
        alias="from",
        description="co_purchase: bought by the customers who bought these items (topped up "
        "with the best sellers of their categories); same_category: best sellers of the items' "
        "categories; new_arrivals: the newest products of the items' categories",
    )
    exclude: Literal["owned", "none"] = Field(
        default="owned",
        description="owned: never a product the customer has bought; none: bought ones may show",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Variant(_Strict):
    template: str = Field(description="the template folder under templates/email")
    weight: int = Field(default=1, ge=0, le=1_000_000, description="relative share")
    name: str | None = Field(default=None, description="shown in stats; the template by default")
    after: DurationRangeText | None = Field(
        default=None,
        description="this variant's own delay instead of the rule's `send.after`, to test "
        "timing: e.g. 10d against 14d",
        examples=["10d", "1w..2w"],
    )

    @field_validator("after")
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        if value is not None:
            parse_range(value)
        return value

    @field_validator("template", "name")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not _ID.match(value):
            raise ValueError("use lower-case letters, digits, '-' and '_' (max 64)")
        return value

    @property
    def label(self) -> str:
        return self.name or self.template


PurchaseScope = Literal["any", "same_sku", "same_category"]
PURCHASE_SCOPE_HELP = (
    "any: any order; same_sku: one of the sequence's items again; same_category: an item "
    "of the same category"
)


class StepIf(_Strict):
    """What must have happened since the previous step for this one to go (all given must
    hold); otherwise the step is skipped (reason `if_<key>`) and the next one is planned.
    Opens and clicks count only a person's (never a mail scanner's)."""

    opened: Literal[True] | None = Field(
        default=None, description="true: the previous step's mail was opened"
    )
    not_opened: Literal[True] | None = Field(
        default=None, description="true: the previous step's mail was not opened"
    )
    clicked: Literal[True] | None = Field(
        default=None, description="true: a link in the previous step's mail was clicked"
    )
    not_clicked: Literal[True] | None = Field(
        default=None, description="true: no link in the previous step's mail was clicked"
    )
    purchased: PurchaseScope | None = Field(
        default=None, description="bought since the previous step; " + PURCHASE_SCOPE_HELP
    )
    not_purchased: PurchaseScope | None = Field(
        default=None, description="not bought since the previous step; " + PURCHASE_SCOPE_HELP
    )
    answered: Literal[True] | None = Field(
        default=None, description="true: the previous step's survey was answered"
    )
    not_answered: Literal[True] | None = Field(
        default=None, description="true: the previous step's survey was not answered"
    )

    @model_validator(mode="after")
    def _consistent(self) -> StepIf:
        given = self.model_dump(exclude_none=True)
        if not given:
            raise ValueError("give a condition, e.g. {not_opened: true}, or leave 'if' out")
        for key in ("opened", "clicked", "purchased", "answered"):
            if key in given and f"not_{key}" in given:
                raise ValueError(f"'{key}' and 'not_{key}' can never both hold")
        return self


class Step(_Strict):
    """A follow-up of the rule's first message (docs/rules.md, "Sequences")."""

    after: DurationText = Field(
        description="delay from the previous step (when it was sent, or due when it was "
        "skipped by its 'if'), or from the event with from: event, e.g. 5d",
        examples=["5d", "2w"],
    )
    from_: Literal["previous", "event"] = Field(
        default="previous",
        alias="from",
        description="previous: count from the previous step; event: from the rule's event",
    )
    template: str = Field(description="the template folder under templates/email")
    if_: StepIf | None = Field(
        default=None,
        alias="if",
        description="only when this happened since the previous step, e.g. "
        "{not_opened: true, not_purchased: same_category}",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("after")
    @classmethod
    def _duration(cls, value: str) -> str:
        span = parse_duration(value)
        if span.months < 0 or span.seconds < 0:
            raise ValueError("a step comes after, not before: e.g. 5d")
        return value

    @field_validator("template")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("use lower-case letters, digits, '-' and '_' (max 128)")
        return value

    @property
    def delay(self) -> Duration:
        return parse_duration(self.after)


class Exit(_Strict):
    """What ends a sequence for the customer, checked as each step falls due."""

    purchased: PurchaseScope | None = Field(
        default=None,
        description="bought since the rule's event (reason exit_purchased); " + PURCHASE_SCOPE_HELP,
    )
    unsubscribed: Literal[True] | None = Field(
        default=None,
        description="true: marketing consent withdrawn (reason exit_unsubscribed)",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Exit:
        if self.purchased is None and self.unsubscribed is None:
            raise ValueError("give purchased, unsubscribed or both, or leave 'exit' out")
        return self


class Review(_Strict):
    """A request to rate the order's products (docs/rules.md, "Review requests")."""

    per: Literal["item", "order"] = Field(
        description="item: one message per distinct product (variant) bought; order: one "
        "message listing each item, each with its own star links"
    )


class StarsRange(_Strict):
    min: int | None = Field(default=None, ge=1, le=5, description="inclusive, 1-5")
    max: int | None = Field(default=None, ge=1, le=5, description="inclusive, 1-5")

    @model_validator(mode="after")
    def _ordered(self) -> StarsRange:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both, e.g. {max: 2}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self

    def matches(self, stars: int) -> bool:
        return (self.min is None or stars >= self.min) and (self.max is None or stars <= self.max)


class OrderCount(_Strict):
    """A range of whole order counts: `{min: 1}`, `{max: 2}`, `{min: 2, max: 5}`."""

    min: int | None = Field(default=None, ge=0, description="inclusive lower bound")
    max: int | None = Field(default=None, ge=0, description="inclusive upper bound")

    @model_validator(mode="after")
    def _not_empty(self) -> OrderCount:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both, e.g. {min: 1}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"empty range: min {self.min} is above max {self.max}")
        return self

    def contains(self, value: int) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class RuleIf(_Strict):
    """The rule's conditions (all given must hold). `orders` is checked when each of its
    messages falls due: otherwise the message is skipped (reason `if_orders`) and a sequence
    ends there. `stars` is checked when the review comes in (review.answered rules): a
    review without them plans nothing."""

    orders: Annotated[int, Field(ge=0, strict=True)] | OrderCount | None = Field(
        default=None,
        description="the customer's standing orders (placed, not cancelled or refunded) at "
        "send time: a number, exactly (0: has not bought), or a range, e.g. {min: 1}",
        examples=[0, {"min": 2}],
    )
    stars: StarsRange | None = Field(
        default=None,
        description="review.answered: the review's stars, e.g. {max: 2} for 1 or 2 stars",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> RuleIf:
        if not self.model_dump(exclude_none=True):
            raise ValueError("give a condition, e.g. {orders: 0}, or leave 'if' out")
        return self

    def orders_hold(self, count: int) -> bool:
        """Whether `count` standing orders meet `orders` (true when it is not given)."""
        wanted = self.orders
        if wanted is None:
            return True
        return count == wanted if isinstance(wanted, int) else wanted.contains(count)


SkipReason = Literal[
    "rebought_same_sku",
    "rebought_same_category",
    "rebought_any",
    "order_cancelled",
    "order_refunded",
]


class Rule(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(
        description="unique across all files; lower-case letters, digits, '-' and '_'",
        examples=["diapers-restock"],
    )
    name: str | None = Field(default=None, description="a title for people, shown in stats")
    kind: Literal["marketing", "transactional"] = Field(
        default="marketing",
        description="marketing needs consent and gets an unsubscribe link; transactional is "
        "about the order itself; inherits `defaults.kind`",
    )
    when: When = Field(description="the event that starts the rule and the filters it must pass")
    send: Send = Field(
        default_factory=Send, description="when to send: a delay, supply, learned timing or date"
    )
    send_window: SendWindowSpec | None = Field(
        default=None, description="null sends at any hour; inherits `defaults.send_window`"
    )
    skip_if: list[SkipReason] = Field(
        default_factory=list, description="checked when planning and again at send time"
    )
    if_: RuleIf | None = Field(
        default=None,
        alias="if",
        description="`orders` is checked when each message falls due, e.g. {orders: 0} (a "
        "welcome that is moot once they bought; unmet: skipped, reason if_orders); `stars` "
        "when a review comes in, e.g. {stars: {max: 2}} on review.answered",
        examples=[{"orders": 0}, {"stars": {"max": 2}}],
    )
    template: str | None = Field(default=None, description="required unless `variants` is given")
    variants: list[Variant] | None = Field(
        default=None,
        description="templates to split between, assigned per customer by weight",
        examples=[[{"template": "a", "weight": 50}, {"template": "b", "weight": 50}]],
    )
    holdout: Annotated[
        float,
        BeforeValidator(_percent),
        _PERCENT_SCHEMA,
    ] = Field(
        default=0,
        ge=0,
        lt=100,
        description="percent of customers kept as a control group: planned, never sent",
        examples=["10%"],
    )
    priority: int = Field(
        default=50, ge=0, le=100, description="higher wins when limits leave room for one"
    )
    limit: Limit | None = Field(default=None, description="per customer, for this rule alone")
    track: bool = Field(
        default=True,
        description="false: no open pixel and no click tracking in this rule's mail",
    )
    coupon: Coupon | None = Field(
        default=None,
        description="a code from a pool for each message, e.g. {pool: BIRTHDAY}",
        examples=[{"pool": "BIRTHDAY", "when_empty": "send"}],
    )
    survey: Survey | None = Field(
        default=None,
        description="the survey in this rule's mail: kind (nps, csat, ces), silent_weight, "
        "reward; without it `{{ survey.links }}` is the 0-10 NPS question",
        examples=[{"kind": "csat", "silent_weight": 0.5, "reward": {"coupon": {"pool": "THANKS"}}}],
    )
    recommend: Recommend | None = Field(
        default=None,
        description="catalog products for `recommendations`, e.g. {count: 3, from: co_purchase}",
        examples=[{"count": 3, "from": "co_purchase", "exclude": "owned"}],
    )
    links: dict[str, str] = Field(
        default_factory=dict,
        max_length=20,
        description=(
            "named links for the template (`links.NAME`): a path is under the shop's URL "
            "(SHOP_URL), or a whole https:// URL"
        ),
        examples=[{"category": "/collections/school-desks"}],
    )
    steps: list[Step] = Field(
        default_factory=list,
        max_length=10,
        description="follow-ups of the first message, in order (steps 2, 3, ...), each "
        "planned when the one before is decided",
        examples=[[{"after": "5d", "template": "nudge", "if": {"not_opened": True}}]],
    )
    exit: Exit | None = Field(
        default=None,
        description="what ends the sequence when a step falls due, e.g. "
        "{purchased: same_category, unsubscribed: true}",
    )
    review: Review | None = Field(
        default=None,
        description="order.delivered / order.fulfilled: ask for a 1-5 star review of each "
        "product bought (`review.items` in the template), per item or per order",
        examples=[{"per": "item"}],
    )
    renamed_from: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        max_length=20,
        description=(
            "ids this rule had before: their waiting (scheduled or paused) messages become "
            "this rule's instead of waiting for a rule that is gone"
        ),
        examples=[["restock-diapers"]],
    )

    @field_validator("links")
    @classmethod
    def _links(cls, links: dict[str, str]) -> dict[str, str]:
        for name, target in links.items():
            if not _LINK_NAME.match(name):
                raise ValueError(f"link name {name!r}: use letters, digits and '_'")
            if target.startswith("/") and not target.startswith("//"):
                continue
            if not _WEB_URL.match(target):
                raise ValueError(
                    f"links.{name}: {target!r} is neither a path under the shop's URL "
                    "(/collections/...) nor an http:// or https:// URL"
                )
        return links

    @model_validator(mode="after")
    def _review_fits_the_event(self) -> Rule:
        if self.review is not None and self.when.event not in REVIEW_EVENTS:
            raise ValueError(
                f"'review' asks about what was received: use it on {' or '.join(REVIEW_EVENTS)}"
            )
        stars = self.if_.stars if self.if_ is not None else None
        if stars is not None and self.when.event != REVIEW_ANSWERED:
            raise ValueError(f"'if: {{stars}}' applies to {REVIEW_ANSWERED} rules")
        if self.when.event == REVIEW_ANSWERED and (
            self.send.supply is not None or self.send.learned is not None or self.steps
        ):
            raise ValueError(f"a {REVIEW_ANSWERED} rule is timed with 'after' alone, e.g. 1h")
        return self

    @model_validator(mode="after")
    def _timing_fits_the_event(self) -> Rule:
        event = self.when.event
        if event in CUSTOMER_EVENTS:
            send = self.send
            other = [
                key
                for key in ("supply", "learned", "at", "anchor", "fallback")
                if getattr(send, key) is not None
            ]
            if other:
                raise ValueError(
                    f"a {event} rule is timed with 'after' from the event (e.g. after: 1h), "
                    f"not with {' or '.join(repr(key) for key in other)}"
                )
            return self
        dated = event not in (*ORDER_EVENTS, REVIEW_ANSWERED)
        if dated and (
            self.send.after is not None
            or self.send.supply is not None
            or self.send.learned is not None
        ):
            raise ValueError(f"a {self.when.event} rule is timed with 'at' (e.g. at: -3d)")
        if not dated and self.send.at is not None and self.send.anchor is None:
            raise ValueError("'at' needs an 'anchor' date on order events, or use 'after'")
        if self.when.event == DELIVERED and self.send.anchor is not None:
            raise ValueError(
                "'anchor' does not go with order.delivered (its 'fallback' is the "
                "timing from fulfilment)"
            )
        if (
            self.send.fallback is not None
            and self.send.anchor is None
            and self.when.event != DELIVERED
        ):
            raise ValueError(
                "'fallback' is the timing for an 'anchor' without a date, or for "
                "order.delivered when no delivery is reported"
            )
        if self.send.anchor is not None and (dated or self.send.at is None):
            raise ValueError("'anchor' goes with 'at' on order events, e.g. at: +6y9mo")
        return self

    @model_validator(mode="after")
    def _one_template(self) -> Rule:
        if (self.template is None) == (self.variants is None):
            raise ValueError("give either 'template' or 'variants'")
        if self.variants is not None:
            labels = [variant.label for variant in self.variants]
            if not labels:
                raise ValueError("'variants' needs at least one variant")
            if len(set(labels)) != len(labels):
                raise ValueError("variants need distinct templates or names")
            if sum(variant.weight for variant in self.variants) == 0:
                raise ValueError("at least one variant needs a weight above 0")
            send = self.send
            timed = any(variant.after is not None for variant in self.variants)
            if timed and (send.supply or send.learned or send.at or send.anchor):
                raise ValueError(
                    "a variant's 'after' replaces the rule's 'send.after': it does not go "
                    "with 'supply', 'learned', 'at' or 'anchor'"
                )
        if self.holdout and self.kind == "transactional":
            raise ValueError("'holdout' applies to marketing rules; transactional mail is owed")
        if self.coupon is not None and self.kind == "transactional":
            # An offer makes mail marketing, which needs consent: transactional mail has none.
            raise ValueError("'coupon' is an offer: use it on marketing rules")
        if (
            self.survey is not None
            and self.survey.reward is not None
            and len(self.id) + len(REWARD_SUFFIX) > 128
        ):
            raise ValueError(
                f"a rule with a survey reward needs an id of at most {128 - len(REWARD_SUFFIX)} "
                f"characters (its reward mail is counted under '<id>{REWARD_SUFFIX}')"
            )
        return self

    @property
    def checks_rebuy(self) -> bool:
        """Whether a later purchase can stop this rule's message (any `rebought_*`)."""
        return any(reason.startswith("rebought") for reason in self.skip_if)

    def timed_for(self, variant: str | None) -> Rule:
        """The rule as its variant times it: with the variant's `after`, if it has one."""
        return self._variant_timings.get(variant, self) if variant is not None else self

    @cached_property
    def _variant_timings(self) -> dict[str, Rule]:
        return {
            variant.label: self.model_copy(
                update={"send": self.send.model_copy(update={"after": variant.after})}
            )
            for variant in self.variants or ()
            if variant.after is not None
        }

    @cached_property
    def reads_purchases(self) -> bool:
        """Whether a later purchase can stop one of its messages: a rebuy check, a step's
        `if: {purchased/not_purchased}` or `exit: {purchased}`."""
        return (
            self.checks_rebuy
            or (self.exit is not None and self.exit.purchased is not None)
            or any(
                step.if_ is not None
                and (step.if_.purchased is not None or step.if_.not_purchased is not None)
                for step in self.steps
            )
        )

    @property
    def first_templates(self) -> list[str]:
        """The templates the first message may use."""
        if self.variants is not None:
            return [variant.template for variant in self.variants]
        assert self.template is not None
        return [self.template]

    @property
    def templates(self) -> list[str]:
        """Every template this rule may send: the first message's, then each step's."""
        return [*self.first_templates, *(step.template for step in self.steps)]

    def step(self, number: int) -> Step | None:
        """Step `number` (2, 3, ...) of the sequence; None for 1 or past the last."""
        return self.steps[number - 2] if 2 <= number <= len(self.steps) + 1 else None

    @field_validator("id", "template")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not _ID.match(value):
            raise ValueError("use lower-case letters, digits, '-' and '_' (max 128)")
        return value

    @cached_property
    def version(self) -> str:
        """A hash of the rule's own definition: editing another rule leaves it unchanged."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# The reward mail of a survey rule goes under this rule id: not a valid rule id itself (no
# dots), so it never names a rule of the files, and its stats stay apart from the survey's.
REWARD_SUFFIX = ".reward"


def reward_rule(rule: Rule) -> Rule | None:
    """The rule the reward mail of `rule`'s survey is sent under: transactional (the customer
    earned the code by answering), its template, the reward's coupon; None without a reward.

    Built without validation on purpose: a coupon on a transactional rule is refused in rule
    files (an offer needs consent), but this code was promised for the answer.
    """
    reward = rule.survey.reward if rule.survey is not None else None
    if reward is None:
        return None
    derived = rule.model_copy(
        update={
            "id": rule.id + REWARD_SUFFIX,
            "name": f"{rule.name or rule.id} (survey reward)",
            "kind": "transactional",
            "template": reward.template,
            "variants": None,
            "holdout": 0,
            "skip_if": [],
            "if_": None,
            "limit": None,
            "coupon": reward.coupon,
            "recommend": None,
            "survey": None,
            "renamed_from": [],
        }
    )
    derived.__dict__.pop("version", None)  # the copied cache is the survey rule's
    return derived


class Defaults(_Strict):
    kind: Literal["marketing", "transactional"] | None = Field(
        default=None, description="the kind of every rule in this file that gives none"
    )
    send_window: SendWindowSpec | None = Field(
        default=None, description="the send window of every rule in this file that gives none"
    )


Kind = Literal["marketing", "transactional"]


class RuleFile(_Strict):
    defaults: Defaults = Field(
        default_factory=Defaults, description="values for every rule in this file"
    )
    rules: list[Rule] = Field(default_factory=list, description="the rules of this file")
    limits: dict[Kind, Limit] = Field(
        default_factory=dict,
        description="per customer, across all rules of a kind, e.g. marketing: {max: 2, per: 7d}",
    )
