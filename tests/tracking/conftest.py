"""A template with links, rules that send it, and clients that fetch from chosen addresses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from httpx import AsyncClient

from app.config import ROOT, Settings
from tests.conftest import Visitor

LINKS_HTML = """{% extends "_layouts/base.html" %}
{% block content %}
<p>Hi {{ customer.first_name or "there" }},</p>
<p><a href="https://shop.example/review?order={{ order.id }}&amp;utm_source=mail">
Review your order</a></p>
<p><a href="https://shop.example/care">Care guide</a> and <a href="https://shop.example/faq">FAQ</a></p>
<p><a href="mailto:help@shop.example">Write to us</a></p>
{% endblock %}
"""
LINKS_TEXT = """Hi {{ customer.first_name or "there" }},

Review your order: https://shop.example/review?order={{ order.id }}&utm_source=mail
Care guide: https://shop.example/care
{% with label="Unsubscribe" %}{% include "_partials/unsubscribe.txt" %}{% endwith %}
"""
RULES = """
rules:
  - id: links
    kind: marketing
    when: {event: order.created}
    send: {after: 0m}
    template: links%s
"""


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The shipped templates plus `links`, a marketing mail with several links."""
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates" / "email", templates)
    folder = templates / "links" / "en"
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text("Your order {{ order.id }}")
    (folder / "body.html").write_text(LINKS_HTML)
    (folder / "body.txt").write_text(LINKS_TEXT)
    rules = tmp_path / "tracking-rules"
    rules.mkdir()
    (rules / "links.yaml").write_text(RULES % "")
    return settings.model_copy(update={"templates_dir": templates, "rules_dir": rules})


@pytest.fixture
async def client(visitor: Visitor) -> AsyncClient:
    return visitor("198.51.100.23")
