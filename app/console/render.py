"""The console's HTML: one jinja2 environment for every page, the dashboard's included.

Autoescaped, and strict about undefined names so a misspelt field fails a test instead of
rendering blank. Templates live in app/console/templates (the layout, the console's
pages) and app/dashboard/templates (the stats page and the login form).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from app.dashboard import figures

# The console's pages in the order the menu shows them: (path, name).
PAGES: tuple[tuple[str, str], ...] = (
    ("/dashboard", "Stats"),
    ("/dashboard/messages", "Messages"),
    ("/dashboard/queue", "Queue"),
    ("/dashboard/rules", "Rules"),
    ("/dashboard/people", "People"),
    ("/dashboard/suppressions", "Suppressions"),
    ("/dashboard/intake", "Intake failures"),
    ("/dashboard/answers", "Survey answers"),
    ("/dashboard/catalog", "Catalog"),
)

_env = jinja2.Environment(
    loader=jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
            jinja2.FileSystemLoader(Path(__file__).parent.parent / "dashboard" / "templates"),
        ]
    ),
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
    age=figures.age,
    when=figures.when,
    stamp=figures.stamp,
    price=figures.price,
)
_env.globals["missing"] = figures.NONE
_env.globals["pages"] = PAGES


def render(template: str, **context: Any) -> str:
    """A page; `visit` (or None before sign-in) gives the menu and the forms' CSRF token."""
    return _env.get_template(template).render(**context)
