"""Machines that follow survey links are recorded as machines and count for nothing."""

from __future__ import annotations

from httpx import AsyncClient

from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import NO_DECLARED_SURVEY, answer, send_order, stored_answers

SPAN = {"from": "2026-11-01", "to": "2026-11-30"}


async def nps_row(client: AsyncClient, api: Api) -> list[dict[str, object]]:
    response = await client.get("/api/v1/stats/nps", params=SPAN, headers=api.headers)
    assert response.status_code == 200
    rows: list[dict[str, object]] = response.json()["rows"]
    return rows


async def test_a_scanner_clicking_every_score_counts_nothing(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    mail = await send_order(client, dispatcher, smtp_sink)
    clock.advance(minutes=5)  # past the prefetch window: only the burst gives it away
    for url in mail.urls:
        assert (await answer(client, url)).status_code == 200  # a browser-like agent
        clock.advance(seconds=0.2)
    stored = await stored_answers(runtime)
    assert len(stored) == 11
    assert {(a.class_, a.reason) for a in stored} == {("machine", "survey_burst")}
    assert await nps_row(client, api) == []
    # The reader comes later and answers once: that counts.
    clock.advance(hours=2)
    await answer(client, mail.urls[8])
    assert await nps_row(client, api) == [
        {
            "key": "furniture-survey",
            "responses": 1,
            "promoters": 0,
            "passives": 1,
            "detractors": 0,
            "nps": 0.0,
            **NO_DECLARED_SURVEY,
        }
    ]


async def test_a_corrected_answer_is_no_burst(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    mail = await send_order(client, dispatcher, smtp_sink)
    clock.advance(minutes=5)
    await answer(client, mail.urls[7])
    clock.advance(seconds=1)
    await answer(client, mail.urls[8])
    clock.advance(seconds=1)
    await answer(client, mail.urls[8])  # the same score again is no new score
    assert [(a.score, a.class_) for a in await stored_answers(runtime)] == [
        (7, "human"),
        (8, "human"),
        (8, "human"),
    ]


async def test_prefetch_scanner_agents_and_unknown_clients(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    mail = await send_order(client, dispatcher, smtp_sink)
    clock.advance(seconds=2)  # fetched as the mail arrived
    await answer(client, mail.urls[0])
    clock.advance(minutes=10)
    await answer(client, mail.urls[1], agent="Mozilla/5.0 (compatible; Barracuda/1.0)")
    assert [(a.class_, a.reason) for a in await stored_answers(runtime)] == [
        ("machine", "prefetch"),
        ("machine", "scanner_user_agent"),
    ]
    assert await nps_row(client, api) == []
    # An unusual client picking one score counts (docs/tracking.md says why).
    clock.advance(minutes=10)
    await answer(client, mail.urls[10], agent="SomeMailApp/3.2")
    assert (await stored_answers(runtime))[-1].class_ == "unknown"
    [row] = await nps_row(client, api)
    assert (row["responses"], row["nps"]) == (1, 100.0)
