"""Shopify's products CSV export (Products > Export) -> our product JSON. Pure.

One row per variant; the rows of a product share its Handle, and only its first row has
the product's own columns (Title, Vendor, Product Category, Type, Tags, Published,
Status). Rows with only an Image Src add images. The export has no product or variant
ids: products are keyed by Handle, variants by SKU, until a webhook gives them their ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from app.catalog.platforms import describe
from app.catalog.schemas import ProductIn

REQUIRED_COLUMNS = ("Handle", "Title", "Variant Price")
_OPTION_VALUES = ("Option1 Value", "Option2 Value", "Option3 Value")
_VARIANT_COLUMNS = (*_OPTION_VALUES, "Variant SKU", "Variant Price")
_DEFAULT_VARIANT_TITLE = "Default Title"
_TRUE = frozenset({"true", "yes", "1"})


class RowError(ValueError):
    """A product of the export that cannot be read; the message names the column."""


def missing_columns(header: Sequence[str]) -> list[str]:
    return [column for column in REQUIRED_COLUMNS if column not in header]


def product_from_rows(
    rows: Sequence[Mapping[str, str | None]], *, shop: str, currency: str | None
) -> ProductIn:
    """The product of one Handle's rows, first row first."""
    first = rows[0]
    handle = _cell(first, "Handle")
    title = _cell(first, "Title")
    if handle is None:
        raise RowError("Handle: missing")
    if title is None:
        raise RowError("Title: missing on the product's first row")
    status = (_cell(first, "Status") or "").lower()
    category = _cell(first, "Product Category")
    images = sorted(
        ((_position(row), src) for row in rows if (src := _cell(row, "Image Src")) is not None),
        key=lambda pair: pair[0],
    )
    data: dict[str, Any] = {
        "handle": handle,
        "title": title,
        "vendor": _cell(first, "Vendor"),
        "product_type": _cell(first, "Type"),
        # Older exports name the category by id only (a gid): nothing a rule can read.
        "categories": [category] if category and not category.startswith("gid://") else [],
        "tags": list(
            dict.fromkeys(
                tag.strip() for tag in (_cell(first, "Tags") or "").split(",") if tag.strip()
            )
        ),
        "url": f"https://{shop}/products/{handle}",
        "image_url": images[0][1] if images else None,
        "active": status == "active"
        if status
        else (_cell(first, "Published") or "").lower() in _TRUE,
        "currency": currency,
        "variants": [_variant(row) for row in rows if any(_cell(row, c) for c in _VARIANT_COLUMNS)],
    }
    try:
        return ProductIn.model_validate(data)
    except ValidationError as exc:
        raise RowError(describe(exc)) from None


def _variant(row: Mapping[str, str | None]) -> dict[str, Any]:
    options = [value for column in _OPTION_VALUES if (value := _cell(row, column))]
    title = " / ".join(options) or None
    quantity = _quantity(row)
    tracked = (_cell(row, "Variant Inventory Tracker") or "").lower() == "shopify"
    in_stock = (
        quantity is None
        or not tracked
        or quantity > 0
        or (_cell(row, "Variant Inventory Policy") or "").lower() == "continue"
    )
    return {
        "sku": _cell(row, "Variant SKU"),
        "title": None if title == _DEFAULT_VARIANT_TITLE else title,
        "price": _money(row, "Variant Price"),
        "in_stock": in_stock,
        "inventory_quantity": quantity,
        "image_url": _cell(row, "Variant Image"),
    }


def _cell(row: Mapping[str, str | None], column: str) -> str | None:
    value = row.get(column)
    return (value.strip() or None) if isinstance(value, str) else None


def _position(row: Mapping[str, str | None]) -> int:
    value = _cell(row, "Image Position")
    return int(value) if value is not None and value.isdigit() else 0


def _quantity(row: Mapping[str, str | None]) -> int | None:
    value = _cell(row, "Variant Inventory Qty")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise RowError("Variant Inventory Qty: not a whole number") from None


def _money(row: Mapping[str, str | None], column: str) -> Decimal | None:
    value = _cell(row, column)
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        raise RowError(f"{column}: not an amount") from None
