"""Survey answers end to end: mail through the real SMTP sink, links fetched as a reader would."""

from __future__ import annotations

from httpx import AsyncClient

from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import (
    NO_DECLARED_SURVEY,
    answer,
    comment,
    send_order,
    stored_answers,
    tamper,
)

SPAN = {"from": "2026-11-01", "to": "2026-11-30"}


async def nps_rows(client: AsyncClient, api: Api, by: str = "rule") -> list[dict[str, object]]:
    response = await client.get("/api/v1/stats/nps", params={**SPAN, "by": by}, headers=api.headers)
    assert response.status_code == 200, response.text
    rows: list[dict[str, object]] = response.json()["rows"]
    return rows


async def test_the_mail_carries_eleven_answers_and_an_answer_is_recorded(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    mail = await send_order(client, dispatcher, smtp_sink)
    base = runtime.settings.public_url
    # Eleven buttons 0..10, all for one message, none rewritten into a /c/ redirect.
    assert [label for _, label in mail.html_links] == [str(score) for score in range(11)]
    token = mail.urls[0].split("/s/")[1].split("/")[0]
    assert mail.urls == [f"{base}/s/{token}/{score}" for score in range(11)]
    assert len(token) == 60
    assert "How likely are you to recommend us to a friend?" in mail.html
    assert "Not likely" in mail.html and "Very likely" in mail.html
    # The text part: the question, then "score: URL" lines.
    assert mail.text_lines == [f"{score}: {url}" for score, url in enumerate(mail.urls)]
    assert "How likely are you to recommend us to a friend? (0 = not likely" in mail.text

    clock.advance(minutes=30)  # read later, not fetched on delivery
    page = await answer(client, mail.urls[9])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Your answer: 9 out of 10." in page.text
    assert '<form method="post" action="comment">' in page.text
    assert 'name="comment" maxlength="2000"' in page.text
    assert "<script" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "form-action 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    [stored] = await stored_answers(runtime)
    assert (stored.score, stored.class_, stored.reason) == (9, "human", "browser")
    assert stored.ip == "198.51.100.0/24"  # the network, never the address
    assert [row["nps"] for row in await nps_rows(client, api)] == [100.0]

    # A changed mind: the latest answer is the one that counts.
    clock.advance(minutes=2)
    assert (await answer(client, mail.urls[6])).status_code == 200
    [row] = await nps_rows(client, api)
    assert row == {
        "key": "furniture-survey",
        "responses": 1,
        "promoters": 0,
        "passives": 0,
        "detractors": 1,
        "nps": -100.0,
        **NO_DECLARED_SURVEY,
    }

    # The comment goes on the latest answer; a later one replaces it.
    written = await comment(client, mail.urls[6], "The wardrobe door was\r\nscratched.")
    assert written.status_code == 200
    assert "Thank you for your comment!" in written.text
    await comment(client, mail.urls[6], "Fixed by support, thanks <b>a lot</b>")
    first, latest = await stored_answers(runtime)
    assert (first.comment, latest.comment) == (None, "Fixed by support, thanks <b>a lot</b>")
    assert latest.commented_at == clock.now()

    # Refused comments show the form again, with what was written, and store nothing.
    too_long = await comment(client, mail.urls[6], "x" * 2001)
    assert too_long.status_code == 422
    assert "A comment can be at most 2,000 characters." in too_long.text
    assert 'name="comment"' in too_long.text
    empty = await comment(client, mail.urls[6], "   ")
    assert empty.status_code == 422 and "Please write a comment first." in empty.text
    escaped = await comment(client, mail.urls[6], "<script>alert(1)</script>" + "y" * 2000)
    assert "<script>alert" not in escaped.text and "&lt;script&gt;" in escaped.text
    assert (await stored_answers(runtime))[-1].comment == "Fixed by support, thanks <b>a lot</b>"
    exactly = await comment(client, mail.urls[6], "ё" * 2000)  # 2,000 characters are fine
    assert exactly.status_code == 200
    assert (await stored_answers(runtime))[-1].comment == "ё" * 2000


async def test_a_russian_customer_gets_russian_links_and_page(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    mail = await send_order(client, dispatcher, smtp_sink, locale="ru-RU")
    assert "Насколько вероятно, что вы порекомендуете нас друзьям?" in mail.html
    assert "Маловероятно" in mail.html and "Очень вероятно" in mail.html
    # The Russian text part links once, to a page with the eleven answers (the template
    # says why); the page records nothing, its buttons are the mail's links.
    choices = mail.urls[0].rsplit("/", 1)[0]
    assert f"Оцените от 0 до 10: {choices}\r\n" in mail.text
    assert mail.text_lines == []
    clock.advance(minutes=30)
    page = await answer(client, choices)
    assert page.status_code == 200 and '<html lang="ru">' in page.text
    assert "<h1>Насколько вероятно, что вы порекомендуете нас друзьям?</h1>" in page.text
    token = choices.rsplit("/", 1)[1]
    assert [f'href="{token}/{score}"' in page.text for score in range(11)] == [True] * 11
    assert (await answer(client, choices, method="HEAD")).status_code == 200
    assert await stored_answers(runtime) == []
    assert (await answer(client, tamper(mail.urls[0]).rsplit("/", 1)[0])).status_code == 404
    page = await answer(client, mail.urls[10])
    assert '<html lang="ru">' in page.text and "Ваша оценка: 10 из 10." in page.text
    done = await comment(client, mail.urls[10], "Всё отлично")
    assert "Спасибо за отзыв!" in done.text


async def test_head_checks_a_link_and_records_nothing(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    mail = await send_order(client, dispatcher, smtp_sink)
    clock.advance(minutes=30)
    assert (await answer(client, mail.urls[3], method="HEAD")).status_code == 200
    assert (await answer(client, tamper(mail.urls[3]), method="HEAD")).status_code == 404
    assert await stored_answers(runtime) == []
    # Nothing to comment on yet: the form only follows an answer.
    assert (await comment(client, mail.urls[3], "hello")).status_code == 404


async def test_preview_links_show_the_page_and_record_nothing(
    client: AsyncClient, runtime: Runtime
) -> None:
    url = f"{runtime.settings.public_url}/s/sample/8"
    page = await answer(client, url)
    assert page.status_code == 200
    assert "Your answer: 8 out of 10." in page.text
    assert "This is a preview: nothing was recorded." in page.text
    assert (await comment(client, url, "looks good")).status_code == 200
    assert await stored_answers(runtime) == []
