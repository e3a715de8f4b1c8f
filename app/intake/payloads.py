"""What the platform mappers share: small, pure conversions of their payloads."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import ValidationError

from app.events import GUEST_PREFIX, Envelope, mended, needs_mending

if TYPE_CHECKING:
    from app.intake.platform import MapContext, Mapper

# The limits of CustomerIn.tags and ItemIn.tags: extra tags are dropped, not fatal.
MAX_TAGS = 50
MAX_TAG_LENGTH = 100
# What OrderIn.discount_codes takes.
MAX_CODES = 50
MAX_CODE_LENGTH = 255

E = TypeVar("E", bound=Envelope)


class PayloadError(ValueError):
    """An authentic delivery whose payload cannot become one of our events; the message says
    why, naming fields but never their values (they hold personal data and go to the logs)."""


def guest_customer_id(email: str) -> str:
    """A stable customer id for a checkout without an account: one address, one customer.

    A digest rather than the address: erasing a customer empties its email columns, and the
    id must not keep the address behind.
    """
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"{GUEST_PREFIX}{digest}"


def text(value: Any) -> str | None:
    """A non-empty string (ids sent as integers become their exact digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def obj(value: Any) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty one (platforms send null freely)."""
    return value if isinstance(value, dict) else {}


def tag_list(value: Any) -> list[str]:
    """Tags from a comma-separated string (Shopify) or a list, within our limits."""
    raw = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    tags = [tag.strip() for tag in raw if isinstance(tag, str) and tag.strip()]
    return [tag for tag in tags if len(tag) <= MAX_TAG_LENGTH][:MAX_TAGS]


def code_list(lines: Any) -> list[str]:
    """Discount codes from a list of objects with a `code` (Shopify's discount_codes,
    WooCommerce's coupon_lines), within our limits: coupons link orders by these."""
    found = [text(obj(line).get("code")) for line in lines] if isinstance(lines, list) else []
    codes = [code for code in found if code is not None and len(code) <= MAX_CODE_LENGTH]
    return codes[:MAX_CODES]


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    """Only the fields the payload carried, so a missing one is not sent as an explicit null."""
    return {key: value for key, value in values.items() if value is not None}


def decode_json(body: bytes | str) -> dict[str, Any]:
    """A delivery's body as a JSON object, money kept as Decimal."""
    try:
        raw = body.decode("utf-8") if isinstance(body, bytes) else body
        payload = json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
        raise PayloadError("body is not UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise PayloadError("body is not a JSON object")
    if needs_mending(raw):  # rare: only then walk the payload
        try:
            payload = mended(payload)
        except RecursionError:
            raise PayloadError("body is not UTF-8 JSON") from None
    return cast(dict[str, Any], payload)


def build(model: type[E], data: dict[str, Any]) -> E:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PayloadError(describe(exc)) from None


def run_mapper(
    mapper: Mapper, topic: str, payload: dict[str, Any], context: MapContext
) -> list[Envelope]:
    """Run a topic's mapper: its events, in the order to apply them (none: nothing for us).
    Any malformed part of the payload becomes one PayloadError."""
    try:
        mapped = mapper(payload, context)
    except PayloadError as exc:
        raise PayloadError(f"{topic}: {exc}") from None
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise PayloadError(f"{topic}: {describe(exc)}") from None
    if mapped is None:
        return []
    return [mapped] if isinstance(mapped, Envelope) else list(mapped)


def describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    return type(exc).__name__
