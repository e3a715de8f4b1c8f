"""ORDERS.jsonl: one `POST /webhooks/orders` body per line, validated as the webhook does.

The models here are the webhook's own (`BODY_MODELS`) with one change: an address already
seen is not validated again. email-validator is most of the cost of reading a body, and a
replay sees the same customers again and again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Annotated

from pydantic import GetPydanticSchema, ValidationError
from pydantic.networks import validate_email
from pydantic_core import ErrorDetails, core_schema

from app.events import (
    BODY_MODELS,
    CustomerIn,
    CustomerUpdated,
    Envelope,
    OrderFulfilled,
    OrderIn,
    OrderPlaced,
)
from app.file_import import BadLine


@lru_cache(maxsize=1 << 17)
def _email(value: str) -> str:
    # What EmailStr does; a bad address raises, and errors are not cached.
    return validate_email(value)[1]


# EmailStr's own core schema (a str, then the validator), with the remembering validator.
_Email = Annotated[
    str,
    GetPydanticSchema(
        lambda _source, _handler: core_schema.no_info_after_validator_function(
            _email, core_schema.str_schema()
        )
    ),
]


class _CustomerIn(CustomerIn):
    email: _Email


class _OrderIn(OrderIn):
    email: _Email | None = None


class _OrderPlaced(OrderPlaced):
    order: _OrderIn
    customer: _CustomerIn


class _OrderFulfilled(OrderFulfilled):
    customer: _CustomerIn | None = None


class _CustomerUpdated(CustomerUpdated):
    customer: _CustomerIn


# Subclasses, so `isinstance(event, OrderPlaced)` holds as for the webhook's models.
MODELS: dict[str, type[Envelope]] = {
    **BODY_MODELS,
    "order.created": _OrderPlaced,
    "order.fulfilled": _OrderFulfilled,
    "order.delivered": _OrderFulfilled,
    "customer.updated": _CustomerUpdated,
}

# Where the body says its type: a guess that picks the model to try first (the top-level
# `type` decides; a wrong guess only costs a second validation).
_TYPE = re.compile(rb'"type"\s*:\s*"([a-z.]+)"')


def parse_line(raw: bytes) -> Envelope:
    """One body, validated for its type; raises ValidationError naming each bad field."""
    found = _TYPE.search(raw)
    model = MODELS.get(found.group(1).decode()) if found else None
    if model is not None:
        try:
            event = model.model_validate_json(raw)
        except ValidationError:
            pass  # maybe a wrong guess: let the envelope say
        else:
            if MODELS[event.type] is model:
                return event
    envelope = Envelope.model_validate_json(raw)
    return MODELS[envelope.type].model_validate_json(raw)


def parse_lines(
    lines: Iterable[bytes], *, progress: Callable[[int], None] | None = None
) -> tuple[list[Envelope], list[BadLine]]:
    """Every valid body in file order, and every bad line with its (1-based) number."""
    events: list[Envelope] = []
    bad: list[BadLine] = []
    for number, raw in enumerate(lines, 1):
        if progress is not None and number % 1024 == 0:
            progress(number)
        line = raw.strip()
        if not line:
            continue
        try:
            events.append(parse_line(line))
        except ValidationError as exc:
            bad.extend(BadLine(number, _describe(error)) for error in exc.errors())
    return events, bad


def _describe(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
