"""Coupon codes as files give them, and as templates see them (pure, no I/O).

A codes file is CSV: one code per line, an optional header row `code`, an optional second
column `expires_at` (ISO date or datetime; a date means the start of that day in UTC).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

MAX_CODE_LENGTH = 64
POOL_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What `aftersale preview` and `rules check` show for a code: plainly not a real one.
SAMPLE_CODE = "SAMPLE-CODE"
# Spaces, tabs and line breaks, control characters (C0, DEL, C1), and the invisible ones
# that would make a code impossible to type back.
_BAD_CHARACTER = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060\ufeff]")


@dataclass(frozen=True)
class IssuedCoupon:
    """A code handed to a message: what its template gets as `coupon`."""

    code: str
    pool: str
    expires_at: datetime | None

    def context(self) -> dict[str, Any]:
        return {"code": self.code, "pool": self.pool, "expires_at": self.expires_at}


def sample_coupon(pool: str) -> IssuedCoupon:
    """The stand-in code of previews and the rules linter; never taken from a pool."""
    return IssuedCoupon(code=SAMPLE_CODE, pool=pool, expires_at=None)


def pool_problem(pool: str) -> str | None:
    if POOL_PATTERN.match(pool):
        return None
    return f"pool name {pool!r}: use letters, digits, '-' and '_' (at most 64)"


@dataclass(frozen=True)
class CodeLine:
    line: int
    code: str
    expires_at: datetime | None


@dataclass(frozen=True)
class RefusedLine:
    line: int
    message: str


@dataclass
class CodesFile:
    codes: list[CodeLine] = field(default_factory=list)
    refused: list[RefusedLine] = field(default_factory=list)


def read_codes(text: str) -> CodesFile:
    """The codes of a file's text, with every refused line and why."""
    found = CodesFile()
    reader = csv.reader(io.StringIO(text, newline=""))
    first = True
    for row in reader:
        number = reader.line_num
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue  # blank lines are layout, not codes
        if first and cells[0].lower() == "code":
            first = False
            continue
        first = False
        try:
            entry = _code_line(number, cells)
        except ValueError as exc:
            found.refused.append(RefusedLine(number, str(exc)))
            continue
        found.codes.append(entry)
    return found


def _code_line(number: int, cells: list[str]) -> CodeLine:
    code = cells[0]
    if not code:
        raise ValueError("empty code")
    if len(code) > MAX_CODE_LENGTH:
        raise ValueError(f"code longer than {MAX_CODE_LENGTH} characters")
    if _BAD_CHARACTER.search(code):
        raise ValueError("code contains whitespace or a control character")
    if len(cells) > 2 and any(cells[2:]):
        raise ValueError("more than two columns (code, expires_at)")
    expires_at = _expiry(cells[1]) if len(cells) > 1 and cells[1] else None
    return CodeLine(number, code, expires_at)


def _expiry(value: str) -> datetime:
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"expires_at {value[:40]!r} is not an ISO date or datetime (e.g. 2027-01-31)"
        ) from None
    # A time without a zone is read as UTC, as every time we store.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def code_key(code: str) -> str:
    """What codes are matched by: shops take codes in any case."""
    return code.strip().lower()
