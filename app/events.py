"""Our events: the body of `POST /webhooks/orders` (our own signed JSON, see README), and
what every platform's payload is mapped to; the answer to a delivery."""

from __future__ import annotations

import json
import math
import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    field_validator,
)


def _external_id(value: Any) -> Any:
    # Shops send ids as strings or as integers of up to 20 digits; keep them exactly, as text.
    if isinstance(value, bool | float):
        raise ValueError("must be a string or an integer")
    if isinstance(value, int):
        return str(value)
    return value


ExternalId = Annotated[
    str, BeforeValidator(_external_id), Field(min_length=1, max_length=64, pattern=r"^\S+$")
]
Amount = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]


def storable_json(value: Any) -> Any:
    """Free-form JSON as both databases store it: PostgreSQL's jsonb refuses NaN and Infinity
    (SQLite would keep them, and no JSON answer could carry them back), and no text column
    takes a lone surrogate. A number is refused (naming the field); text is mended (U+FFFD)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must hold finite numbers only (no NaN or Infinity)")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError("must hold finite numbers only (no NaN or Infinity)")
    if isinstance(value, str):
        return mend_text(value)
    if isinstance(value, dict):
        return {mend_text(str(key)): storable_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable_json(item) for item in value]
    return value


def mend_text(value: str) -> str:
    """`value` with any lone surrogate (from a `\\ud800` escape) as U+FFFD: not UTF-8, so no
    database can store it; a proper pair becomes its character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


# Shops' own fields (gift messages, line-item properties): anything JSON that can be stored.
Attributes = Annotated[dict[str, Any], AfterValidator(storable_json)]
# The ids of customers without the shop's own: guest checkouts, imports without customer ids
# (`guest:` and a digest of the address). One with the shop's id takes such a customer over.
GUEST_PREFIX = "guest:"

EventType = Literal[
    "order.created",
    "order.fulfilled",
    "order.delivered",
    "order.cancelled",
    "order.refunded",
    "customer.updated",
    "customer.deleted",
]


class _Body(BaseModel):
    # Unknown fields are ignored: shops add fields, and that must not break intake.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Envelope(_Body):
    id: str = Field(min_length=1, max_length=255)
    type: EventType
    occurred_at: AwareDatetime


class ItemIn(_Body):
    sku: str | None = Field(default=None, max_length=255)
    name: str = Field(min_length=1, max_length=500)
    category: str | None = Field(default=None, max_length=255)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    quantity: int = Field(default=1, ge=1, le=100_000)
    unit_price: Amount | None = None
    attributes: Attributes = Field(default_factory=dict)
    # The platform's ids of what was bought: they find the item's catalog product (before
    # the SKU, which shops reuse and custom items lack). Stored as product_ref/variant_ref.
    product_id: ExternalId | None = Field(
        default=None, description="the shop's product id (catalog `id`), as text or integer"
    )
    variant_id: ExternalId | None = Field(
        default=None, description="the shop's variant id (catalog variant `id`)"
    )


class OrderIn(_Body):
    id: ExternalId
    number: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="what the customer knows the order by, e.g. 1042 (templates: order.number)",
    )
    created_at: AwareDatetime
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    total: Amount
    email: EmailStr | None = None
    items: list[ItemIn] = Field(min_length=1, max_length=1000)
    discount_codes: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list,
        max_length=50,
        description="coupon codes the order used; one a message carried credits it",
    )
    attributes: Attributes = Field(
        default_factory=dict, description="the order's own fields, e.g. a gift message"
    )

    @field_validator("number")
    @classmethod
    def _without_hash(cls, value: str | None) -> str | None:
        # Templates put the "#" (or "№") before it: "#1042" is stored as 1042.
        if value is None:
            return None
        return value.lstrip("#").strip() or None


class OrderRef(_Body):
    id: ExternalId


class CustomerIn(_Body):
    id: ExternalId
    email: EmailStr
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    locale: str | None = Field(
        default=None, max_length=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"
    )
    time_zone: str | None = Field(default=None, max_length=64)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1")
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    birthday: date | None = None
    marketing_consent: bool = False
    attributes: Attributes = Field(default_factory=dict)

    @field_validator("time_zone")
    @classmethod
    def _iana_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class CustomerRef(_Body):
    id: ExternalId
    # With `customer.deleted`: also erase this address's guest checkouts (kept as other
    # customers, since a guest has no customer id of the shop's).
    email: EmailStr | None = None


class OrderPlaced(Envelope):
    """`order.created`: the whole order and its customer."""

    order: OrderIn
    customer: CustomerIn


class OrderFulfilled(Envelope):
    """`order.fulfilled` (shipped or handed over) and `order.delivered` (it reached the
    customer): the order id; the customer may come along."""

    order: OrderRef
    customer: CustomerIn | None = None


class RefundedItem(_Body):
    sku: str = Field(min_length=1, max_length=255)
    quantity: int = Field(default=1, ge=1, le=100_000)


class OrderClosed(Envelope):
    """`order.cancelled` and `order.refunded`: only the order id is needed.

    A refund may list `items` (by SKU): then only those are refunded, and only the messages
    about them are cancelled, unless nothing of the order is left.
    """

    order: OrderRef
    items: list[RefundedItem] | None = Field(default=None, min_length=1, max_length=1000)


class CustomerUpdated(Envelope):
    customer: CustomerIn


class CustomerDeleted(Envelope):
    customer: CustomerRef


BODY_MODELS: dict[str, type[Envelope]] = {
    "order.created": OrderPlaced,
    "order.fulfilled": OrderFulfilled,
    "order.delivered": OrderFulfilled,
    "order.cancelled": OrderClosed,
    "order.refunded": OrderClosed,
    "customer.updated": CustomerUpdated,
    "customer.deleted": CustomerDeleted,
}


def parse_body(body: bytes | str, *, claimed_type: str | None = None) -> Envelope:
    """Validate the envelope, then the body for its type; pydantic's ValidationError names
    every bad field.

    `claimed_type`: the `type` the body was seen to hold (read leniently on receipt); a valid
    body of that type is then validated once, not twice, with the same result.
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    if needs_mending(text):  # rare: text no database stores, mended in the values
        try:
            data = mended(json.loads(body))
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict):
            envelope = Envelope.model_validate(data)
            return BODY_MODELS[envelope.type].model_validate(data)
    model = BODY_MODELS.get(claimed_type or "")
    if model is not None:
        try:
            event = model.model_validate_json(body)
        except ValidationError:
            pass  # answered below as before: the envelope's errors first, if it has any
        else:
            # Its envelope is valid too (the same fields), and of this very type: what
            # validating the envelope first would have chosen.
            if event.type == claimed_type:
                return event
    envelope = Envelope.model_validate_json(body)
    return BODY_MODELS[envelope.type].model_validate_json(body)


# The escapes whose strings no database stores as they are: NUL, and (lone) surrogates.
_ODD_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def needs_mending(raw: str) -> bool:
    """Whether a JSON text may hold a string `mended` would change (rare: check it first)."""
    return _ODD_ESCAPE.search(raw) is not None


def mended(value: Any) -> Any:
    """Decoded JSON with NUL dropped from its strings and lone surrogates made U+FFFD: neither
    PostgreSQL nor SQLite stores them, and no name, address or SKU needs them."""
    if isinstance(value, str):
        return mend_text(value.replace("\x00", ""))
    if isinstance(value, list):
        return [mended(item) for item in value]
    if isinstance(value, dict):
        return {mended(key): mended(item) for key, item in value.items()}
    return value


EXAMPLE_BODY: dict[str, Any] = {
    "id": "evt-1",
    "type": "order.created",
    "occurred_at": "2026-11-20T10:00:00Z",
    "order": {
        "id": "820982911946154508",
        "created_at": "2026-11-20T09:59:00Z",
        "currency": "EUR",
        "total": "49.80",
        "items": [
            {
                "sku": "DIAPER-M-60",
                "name": "Diapers M, 60 pcs",
                "category": "baby/diapers",
                "tags": ["baby"],
                "quantity": 2,
                "unit_price": "24.90",
                "attributes": {},
            }
        ],
    },
    "customer": {
        "id": "c-1001",
        "email": "anna@example.org",
        "first_name": "Anna",
        "last_name": "Ivanova",
        "locale": "ru",
        "time_zone": "Europe/Moscow",
        "birthday": "1990-02-28",
        "marketing_consent": True,
        "attributes": {"children": [{"birth_date": "2021-05-01"}]},
    },
}


class IntakeResult(BaseModel):
    # ignored: about someone erased, from before the erasure (docs/privacy.md): kept as a
    # delivery id only, nothing planned.
    # queued: stored, to be applied by a worker (AFTERSALE_INTAKE_MODE=queued); the counts
    # stay 0, the messages it plans are seen in the outbox.
    status: Literal["accepted", "queued", "duplicate", "ignored"]
    event_id: str
    messages_planned: int = 0
    messages_cancelled: int = 0
