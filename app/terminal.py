"""What the operator commands print: aligned plain-text tables, times, and JSON exactly as the
operator API answers it (so a script can switch between the two)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

NONE = "-"


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows (the first a header) as lines of left-aligned columns two spaces apart."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def one_line(text: str | None) -> str:
    """Text on one line of a table: an SMTP reply or a report can span several."""
    return " ".join(text.split()) if text else NONE


def moment(value: datetime | None) -> str:
    """A time in UTC to the second, as the API writes it: 2026-11-20T10:00:00Z."""
    if value is None:
        return NONE
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def print_json(value: BaseModel | dict[str, Any], stdout: TextIO) -> None:
    """The JSON body the API returns for the same thing, indented for a reader."""
    data = (
        value.model_dump(mode="json", by_alias=True)
        if isinstance(value, BaseModel)
        else to_jsonable_python(value)
    )
    print(json.dumps(data, indent=2, ensure_ascii=False), file=stdout)


# The API's bounds on ids and page sizes (app.api.deps.MAX_ROW_ID, `limit`'s le=500), kept
# here so the commands need not import FastAPI.
MAX_ROW_ID = 2**63 - 1
MAX_LIMIT = 500


def page_problem(
    *, option: str, value: str | None, choices: Sequence[str], limit: int, cursor: int | None
) -> str | None:
    """What is wrong with a listing command's filter (`option` VALUE among `choices`),
    --limit and --cursor, as the API would refuse them; None when nothing is."""
    if value is not None and value not in choices:
        return f"{option} {value!r} is none of " + ", ".join(choices)
    if not 1 <= limit <= MAX_LIMIT:
        return f"--limit must be 1 to {MAX_LIMIT}"
    if cursor is not None and not 1 <= cursor <= MAX_ROW_ID:
        return "--cursor must be a next_cursor printed by a previous page"
    return None
