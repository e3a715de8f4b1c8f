"""Links that name no message, or no score, answer 404 and record nothing."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from app.survey.tokens import make_survey_token
from tests.conftest import FrozenClock
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import answer, comment, send_order, stored_answers, tamper


@pytest.fixture
async def url(
    client: AsyncClient, dispatcher: Dispatcher, smtp_sink: SmtpSink, clock: FrozenClock
) -> str:
    """The mail's link for 7, read half an hour after it was sent."""
    mail = await send_order(client, dispatcher, smtp_sink)
    clock.advance(minutes=30)
    return mail.urls[7]


async def assert_refused(client: AsyncClient, runtime: Runtime, link: str) -> None:
    response = await answer(client, link)
    assert response.status_code == 404, link
    assert "This survey link is not valid" in response.text
    assert response.headers["cache-control"] == "no-store"
    assert await stored_answers(runtime) == []


async def test_a_tampered_token_is_refused(client: AsyncClient, runtime: Runtime, url: str) -> None:
    await assert_refused(client, runtime, tamper(url))
    await assert_refused(client, runtime, url.replace("/7", "/7x"))
    assert (await comment(client, tamper(url), "hi")).status_code == 404


@pytest.mark.parametrize("score", ["11", "-1", "07", "x", "100"])
async def test_a_score_outside_0_to_10_is_refused(
    client: AsyncClient, runtime: Runtime, url: str, score: str
) -> None:
    await assert_refused(client, runtime, url.rsplit("/", 1)[0] + f"/{score}")


async def test_tokens_of_other_keys_messages_or_uses_are_refused(
    client: AsyncClient, runtime: Runtime, url: str, clock: FrozenClock
) -> None:
    base = runtime.settings.public_url
    secrets = runtime.settings.survey_secrets
    unknown = make_survey_token(message_id=987654, issued_at=clock.now(), secrets=secrets)
    await assert_refused(client, runtime, f"{base}/s/{unknown}/7")
    foreign = make_survey_token(
        message_id=1, issued_at=clock.now(), secrets=["another-survey-secret-0123"]
    )
    await assert_refused(client, runtime, f"{base}/s/{foreign}/7")
    # The tracking secret signs click tokens, never survey tokens, and the reverse.
    tracking = make_survey_token(
        message_id=1, issued_at=clock.now(), secrets=runtime.settings.tracking_secrets
    )
    await assert_refused(client, runtime, f"{base}/s/{tracking}/7")
    token = url.rsplit("/", 2)[1]
    assert (await answer(client, f"{base}/c/{token}")).status_code == 404


async def test_a_link_past_its_days_is_refused(
    client: AsyncClient, runtime: Runtime, url: str, clock: FrozenClock
) -> None:
    clock.advance(days=runtime.settings.survey_link_days, seconds=1)
    await assert_refused(client, runtime, url)


async def test_a_rotated_secret_keeps_old_links_working(
    client: AsyncClient, runtime: Runtime, url: str
) -> None:
    runtime.settings = runtime.settings.model_copy(
        update={"survey_secrets": ["a-new-survey-secret-0123", *runtime.settings.survey_secrets]}
    )
    assert (await answer(client, url)).status_code == 200
    assert [a.score for a in await stored_answers(runtime)] == [7]
