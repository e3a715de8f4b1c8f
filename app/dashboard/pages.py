"""The dashboard's HTML, rendered by the console's templates (app/console/render.py)."""

from __future__ import annotations

from datetime import date, timedelta

from app.console.access import Visit
from app.console.render import render
from app.dashboard.service import Dashboard
from app.stats.schemas import Bucket


def login_page(*, message: str | None = None) -> str:
    return render("login.html", message=message)


def dashboard_page(
    *,
    visit: Visit,
    first: date,
    last: date,
    bucket: Bucket,
    rule: str | None,
    rules: list[str],
    data: Dashboard | None,
    today: date,
    lag: timedelta,
    error: str | None = None,
) -> str:
    """The page; with `error` (a bad span or rule), only the form and the message."""
    return render(
        "dashboard.html",
        visit=visit,
        here="/dashboard",
        first=first.isoformat(),
        last=last.isoformat(),
        bucket=bucket,
        rule=rule,
        rules=rules,
        data=data,
        error=error,
        lag_minutes=max(1, round(lag.total_seconds() / 60)),
        # Quick ranges: the last 7, 30 and 90 days to today, the rest of the form as it is.
        ranges=[(days, (today - timedelta(days=days - 1)).isoformat()) for days in (7, 30, 90)],
        today=today.isoformat(),
    )
