"""The dashboard's HTML, rendered by the console's templates (app/console/render.py)."""

from __future__ import annotations

from datetime import date

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
    )
