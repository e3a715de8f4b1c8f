"""Stats rows as CSV: the JSON rows' fields as columns, in the same order.

`revenue` (an object by currency in JSON) becomes one `revenue_<CURRENCY>` column per
currency found in any row; null is an empty cell, true and false are written as in JSON.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel


def csv_text(rows: Sequence[BaseModel], *, fields: Sequence[str]) -> str:
    """`fields` are the columns (by alias) when there are no rows to take them from."""
    records = [row.model_dump(mode="json", by_alias=True) for row in rows]
    currencies = sorted({currency for record in records for currency in record.get("revenue", {})})
    columns: list[str] = []
    for name in fields:
        if name == "revenue":
            columns.extend(f"revenue_{currency}" for currency in currencies)
        else:
            columns.append(name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for record in records:
        revenue = record.pop("revenue", {})
        record.update({f"revenue_{c}": revenue.get(c) for c in currencies})
        writer.writerow([_cell(record.get(column)) for column in columns])
    return out.getvalue()


def columns_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
