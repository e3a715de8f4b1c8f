"""CSAT and CES surveys and the answer reward, through the HTTP API and the real SMTP sink."""

from __future__ import annotations

from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.config import Settings
from app.models import Message
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.coupons.conftest import add_pool
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import COFFEE, answer, send_order, stored_answers, token_for

RULES = """
rules:
  - id: furniture-survey
    kind: transactional
    when: {event: order.created, items: {category: [kids]}}
    send: {after: 0m}
    template: delivery-follow-up
    survey: {kind: nps, reward: {coupon: {pool: THANKS}}}
  - id: coffee-survey
    kind: transactional
    when: {event: order.created, items: {category: [coffee]}}
    send: {after: 0m}
    template: delivery-follow-up
    survey: {kind: csat, silent_weight: 1}
"""


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    (settings.rules_dir / "rules.yaml").write_text(RULES)
    return settings


async def messages(runtime: Runtime) -> list[tuple[str, str, str | None]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Message.rule_id, Message.status, Message.status_reason).order_by(Message.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kind", "scores", "question", "off_scale"),
    [
        ("csat", [1, 2, 3, 4, 5], "How satisfied are you with your order?", [0, 6, 10]),
        ("ces", [1, 2, 3, 4, 5, 6, 7], "How easy was it to get what you needed", [0, 8]),
    ],
)
async def test_each_kind_answers_on_its_own_scale(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    kind: str,
    scores: list[int],
    question: str,
    off_scale: list[int],
) -> None:
    mail = await send_order(client, dispatcher, smtp_sink, items=COFFEE)
    token = token_for(runtime, mail, kind)
    clock.advance(minutes=30)
    page = await client.get(f"/s/{token}")
    assert page.status_code == 200 and question in page.text
    assert [f'href="{token}/{score}"' in page.text for score in scores] == [True] * len(scores)
    assert f'href="{token}/{scores[-1] + 1}"' not in page.text
    for score in off_scale:  # the kind is signed: no 0-10 answer on a 1-5 token
        assert (await answer(client, f"/s/{token}/{score}")).status_code == 404
    assert await stored_answers(runtime) == []
    done = await answer(client, f"/s/{token}/{scores[-1]}")
    assert done.status_code == 200
    assert f"Your answer: {scores[-1]} out of {scores[-1]}." in done.text
    [stored] = await stored_answers(runtime)
    assert (stored.kind, stored.score, stored.class_) == (kind, scores[-1], "human")


async def test_sample_links_of_each_kind_record_nothing(
    client: AsyncClient, runtime: Runtime
) -> None:
    assert "Your answer: 5 out of 5." in (await answer(client, "/s/sample-csat/5")).text
    assert (await answer(client, "/s/sample-csat/6")).status_code == 404
    choices = await client.get("/s/sample-ces")
    assert 'href="sample-ces/7"' in choices.text and 'href="sample-ces/8"' not in choices.text
    assert "Your answer: 9 out of 10." in (await answer(client, "/s/sample/9")).text
    assert await stored_answers(runtime) == []


async def test_a_persons_answer_earns_one_coupon_mail(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    await add_pool(runtime, ["THANKS-AAA", "THANKS-BBB"], pool="THANKS")
    mail = await send_order(client, dispatcher, smtp_sink)
    clock.advance(minutes=30)
    assert (await answer(client, mail.urls[9])).status_code == 200
    # Held for the burst window, then sent like any message.
    assert (await dispatcher.run_once()).outcomes == {}
    clock.advance(seconds=runtime.settings.tracking_burst_seconds + 1)
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    reward = smtp_sink.received[-1]
    assert reward.message["Subject"] == "Thank you for your answer: a small gift inside"
    assert "THANKS-AAA" in reward.part("text/html") and "THANKS-AAA" in reward.part("text/plain")
    assert reward.message["List-Unsubscribe"] is None  # transactional: the code was earned
    # A changed mind, a comment: one reward per survey, never two.
    clock.advance(minutes=5)
    assert (await answer(client, mail.urls[3])).status_code == 200
    clock.advance(minutes=5)
    assert (await dispatcher.run_once()).outcomes == {}
    assert len(smtp_sink.received) == 2
    assert await messages(runtime) == [
        ("furniture-survey", "sent", None),
        ("furniture-survey.reward", "sent", None),
    ]


async def test_a_scanner_earns_nothing_and_the_person_after_it_does(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    await add_pool(runtime, ["THANKS-AAA"], pool="THANKS")
    mail = await send_order(client, dispatcher, smtp_sink)
    clock.advance(minutes=5)
    for url in mail.urls:  # a browser-like scanner clicking every score
        await answer(client, url)
        clock.advance(seconds=0.2)
    clock.advance(minutes=1)
    assert (await dispatcher.run_once()).outcomes == {}
    assert await messages(runtime) == [
        ("furniture-survey", "sent", None),
        ("furniture-survey.reward", "cancelled", "survey_burst"),
    ]
    clock.advance(hours=2)
    await answer(client, mail.urls[10])
    clock.advance(minutes=1)
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert "THANKS-AAA" in smtp_sink.received[-1].part("text/plain")


async def test_an_empty_pool_skips_the_reward_as_a_rule_coupon_would(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    mail = await send_order(client, dispatcher, smtp_sink)
    clock.advance(minutes=30)
    await answer(client, mail.urls[10])
    clock.advance(minutes=1)
    assert (await dispatcher.run_once()).outcomes == {"skipped": 1}
    assert len(smtp_sink.received) == 1
    assert (await messages(runtime))[-1] == (
        "furniture-survey.reward",
        "skipped",
        "coupon_pool_empty",
    )


async def test_a_rule_without_a_reward_plans_nothing(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    mail = await send_order(client, dispatcher, smtp_sink, items=COFFEE)
    clock.advance(minutes=30)
    await answer(client, f"/s/{token_for(runtime, mail, 'csat')}/5")
    assert await messages(runtime) == [("coffee-survey", "sent", None)]


async def test_a_csat_rules_mail_carries_five_answers(
    client: AsyncClient, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    mail = await send_order(client, dispatcher, smtp_sink, items=COFFEE)
    assert [label for _, label in mail.html_links] == ["1", "2", "3", "4", "5"]
    assert "How satisfied are you with your order?" in mail.html
