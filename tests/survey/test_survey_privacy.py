"""A comment is personal data: exported with the customer, erased with them."""

from __future__ import annotations

from httpx import AsyncClient

from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import answer, comment, send_order, stored_answers
from tests.test_privacy import database_text

COMMENT = "Для Маши шкаф великоват, звоните мне: +7 900 123-45-67"
AGENT = "Mozilla/5.0 (X11; Linux x86_64) PersonalBrowser/7.7-anna-build"


async def test_answers_are_exported_and_erased(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    mail = await send_order(client, dispatcher, smtp_sink, customer_id="c-77")
    clock.advance(minutes=30)
    await answer(client, mail.urls[4], agent=AGENT)
    await comment(client, mail.urls[4], COMMENT)

    export = await client.get("/api/v1/customers/c-77/export", headers=api.headers)
    [exported] = export.json()["survey_answers"]
    assert exported["score"] == 4 and exported["comment"] == COMMENT
    assert exported["user_agent"] == AGENT and exported["network"] == "198.51.100.0/24"
    before = await database_text(runtime)
    assert COMMENT.lower() in before and "anna-build" in before and "198.51.100.0/24" in before

    assert (await client.delete("/api/v1/customers/c-77", headers=api.headers)).status_code == 200
    after = await database_text(runtime)
    assert "маш" not in after and "anna-build" not in after and "198.51.100" not in after
    # The score stays, so NPS still adds up.
    [kept] = await stored_answers(runtime)
    assert (kept.score, kept.comment, kept.user_agent, kept.ip) == (4, None, None, None)
    nps = await client.get(
        "/api/v1/stats/nps", params={"from": "2026-11-01", "to": "2026-11-30"}, headers=api.headers
    )
    assert [row["detractors"] for row in nps.json()["rows"]] == [1]

    # The link still thanks whoever follows it, but stores nothing about them again.
    clock.advance(minutes=30)
    assert (await answer(client, mail.urls[9], agent=AGENT)).status_code == 200
    assert (await comment(client, mail.urls[9], COMMENT)).status_code == 200
    assert len(await stored_answers(runtime)) == 1
    assert "anna-build" not in await database_text(runtime)
