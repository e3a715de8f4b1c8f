"""`{{ survey.links }}` prints buttons in body.html and lines in body.txt, in the mail's
language; `survey.urls` is there for hand-made layouts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.config import ROOT
from app.mail.templates import TemplateError, TemplateRenderer
from app.preview.lint import check_rules
from app.survey.links import sample_survey_context, survey_context
from app.survey.tokens import make_survey_token, read_survey_token

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def renderer(
    tmp_path: Path, html: str, text: str, locales: tuple[str, ...] = ("en",)
) -> TemplateRenderer:
    for locale in locales:
        folder = tmp_path / "survey" / locale
        folder.mkdir(parents=True)
        (folder / "subject.txt").write_text("Hi")
        (folder / "body.html").write_text(html)
        (folder / "body.txt").write_text(text)
    return TemplateRenderer(tmp_path, default_locale="en")


def test_each_part_gets_its_own_form(tmp_path: Path) -> None:
    links = renderer(tmp_path, "<p>Q</p>{{ survey.links }}", "{{ survey.links }}")
    context = {"survey": survey_context(public_url="https://m.example/", token="T&x")}
    rendered = links.render("survey", locale="ru_RU", context=context)
    # The default (English) template, so English words, whatever the customer's locale.
    assert "How likely are you to recommend us to a friend?" in rendered.html
    assert rendered.html.count('href="https://m.example/s/T&amp;x/') == 11
    assert "table-layout:fixed" in rendered.html and "<script" not in rendered.html
    assert rendered.text.splitlines()[1:] == [
        f"{score}: https://m.example/s/T&x/{score}" for score in range(11)
    ]


def test_russian_template_gets_russian_words(tmp_path: Path) -> None:
    links = renderer(tmp_path, "{{ survey.links }}", "{{ survey.links }}", ("en", "ru"))
    context = {"survey": sample_survey_context("https://m.example")}
    rendered = links.render("survey", locale="ru-RU", context=context)
    assert "Маловероятно" in rendered.html and "Очень вероятно" in rendered.html
    assert rendered.text.startswith("Насколько вероятно, что вы порекомендуете нас друзьям?")


def test_marketers_lay_out_urls_themselves(tmp_path: Path) -> None:
    html = '{% for link in survey.urls %}<a href="{{ link.url }}">{{ link.score }}</a>{% endfor %}'
    links = renderer(tmp_path, html, "{{ survey.urls[10].url }}")
    rendered = links.render(
        "survey", locale="en", context={"survey": sample_survey_context("https://m.example")}
    )
    assert '<a href="https://m.example/s/sample/0">0</a>' in rendered.html
    assert rendered.text == "https://m.example/s/sample/10\n"


def test_without_a_survey_the_template_fails_loudly(tmp_path: Path) -> None:
    links = renderer(tmp_path, "{{ survey.links }}", "x")
    with pytest.raises(TemplateError, match="survey"):
        links.render("survey", locale="en", context={"survey": None})


def test_rules_check_renders_templates_with_survey_links() -> None:
    errors = check_rules(
        ROOT / "rules", templates_dir=ROOT / "templates" / "email", default_locale="en"
    )
    assert errors == []


def test_tokens_name_the_message_and_differ_each_time() -> None:
    secrets = ["survey-secret-0123456789"]
    first = make_survey_token(message_id=42, issued_at=NOW, secrets=secrets)
    second = make_survey_token(message_id=42, issued_at=NOW, secrets=secrets)
    assert first != second and len(first) == 60
    claims = read_survey_token(
        first, secrets=secrets, now=NOW, max_age=NOW - NOW.replace(year=2025)
    )
    assert claims is not None and claims.message_id == 42 and claims.issued_at == NOW
    assert (
        read_survey_token(first, secrets=["other-secret-0123456"], now=NOW, max_age=NOW - NOW)
        is None
    )
