"""Dates that rules count from, read from customer and item data. Pure.

`customer.attributes.children[].birth_date` walks the customer's attributes; `[]` means
"each element", so a customer with two children yields two dates. Values that are not
ISO dates (YYYY-MM-DD, optionally with a time) are ignored rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from app.rules.facts import CustomerFacts, ItemFacts


def anchor_dates(
    path: str, *, customer: CustomerFacts | None, items: Sequence[ItemFacts]
) -> list[date]:
    root, *steps = path.split(".")
    values: list[Any]
    if root == "customer":
        values = (
            []
            if customer is None
            else [{"birthday": customer.birthday, "attributes": customer.attributes}]
        )
    else:
        values = [{"attributes": item.attributes, "sku": item.sku} for item in items]
    for step in steps:
        many = step.endswith("[]")
        key = step.removesuffix("[]")
        found: list[Any] = []
        for value in values:
            if not isinstance(value, Mapping) or key not in value:
                continue
            inner = value[key]
            if many:
                found.extend(inner if isinstance(inner, list) else [])
            else:
                found.append(inner)
        values = found
    return sorted({parsed for value in values if (parsed := _as_date(value)) is not None})


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None
