"""The dashboard's HTML: jinja2 templates in app/dashboard/templates, autoescaped."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import jinja2

from app.dashboard import figures
from app.dashboard.service import Dashboard
from app.stats.schemas import Bucket

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    count=figures.count,
    rate=figures.rate,
    money=figures.money,
    score=figures.score,
    mean=figures.mean,
)
_env.globals["missing"] = figures.NONE


def login_page(*, message: str | None = None) -> str:
    return _env.get_template("login.html").render(message=message)


def dashboard_page(
    *,
    first: date,
    last: date,
    bucket: Bucket,
    rule: str | None,
    rules: list[str],
    data: Dashboard | None,
    error: str | None = None,
) -> str:
    """The page; with `error` (a bad span or rule), only the form and the message."""
    return _env.get_template("dashboard.html").render(
        first=first.isoformat(),
        last=last.isoformat(),
        bucket=bucket,
        rule=rule,
        rules=rules,
        data=data,
        error=error,
    )
