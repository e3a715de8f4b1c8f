"""The dates `--from` and `--until` accept. Standard library only: the CLI loads it always."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, time, timedelta


def parse_instant(text: str, *, end_of_day: bool = False) -> datetime:
    """YYYY-MM-DD or ISO 8601; naive means UTC. A bare date is its first instant, or with
    `end_of_day` its last, so `--until 2027-01-31` includes the 31st."""
    text = text.strip()
    if len(text) == 10:
        moment = datetime.combine(date.fromisoformat(text), time.min, tzinfo=UTC)
        return moment + timedelta(days=1, microseconds=-1) if end_of_day else moment
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def from_option(text: str) -> datetime:
    return _option(text, end_of_day=False)


def until_option(text: str) -> datetime:
    return _option(text, end_of_day=True)


def _option(text: str, *, end_of_day: bool) -> datetime:
    try:
        return parse_instant(text, end_of_day=end_of_day)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use YYYY-MM-DD or ISO 8601, e.g. 2027-01-31T12:00Z"
        ) from None


def jobs_option(text: str) -> int:
    """`--jobs`: a whole number of processes, at least 1."""
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1 or more)")
    return jobs
