"""Every single-character change, truncation and random stand-in for the tokens of a real
mail (open pixel, click, unsubscribe) is a 404 that records nothing and redirects nowhere."""

from __future__ import annotations

import random
import re
import string
from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import func, select

from app.config import Settings
from app.models import Suppression, TrackingEvent
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import SmtpSink
from tests.tracking.test_tracking_flow import path, send_one

TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Every guess must reach the token check: the per-client limit in front of it is
    # another test's subject.
    return settings.model_copy(update={"public_rate_per_minute": 0})


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-tampered")
    yield worker
    await worker.sender.close()


def one_character_changes(token: str) -> list[str]:
    """The token with each position changed to another token character, in turn."""
    changed = []
    for index, character in enumerate(token):
        other = TOKEN_ALPHABET[(TOKEN_ALPHABET.index(character) + 1 + index) % 64]
        if other == character:
            other = TOKEN_ALPHABET[(TOKEN_ALPHABET.index(character) + 1) % 64]
        changed.append(token[:index] + other + token[index + 1 :])
    return changed


def mangled(token: str, rng: random.Random) -> list[str]:
    """Truncated, extended, padded and random tokens, and ones with characters swapped."""
    swapped = token[1] + token[0] + token[2:]
    return [
        token[:-1],
        token[: len(token) // 2],
        token[:1],
        token + "A",
        token + "==",
        token.upper() if token.upper() != token else token.lower(),
        swapped if swapped != token else token[::-1],
        "".join(rng.choice(TOKEN_ALPHABET) for _ in token),
        "".join(rng.choice(TOKEN_ALPHABET) for _ in token),
        "A" * len(token),
        "%2e%2e%2f" + token,
    ]


async def recorded(runtime: Runtime) -> tuple[int, int]:
    async with runtime.session_factory() as session:
        events = (
            await session.execute(select(func.count()).select_from(TrackingEvent))
        ).scalar_one()
        suppressed = (
            await session.execute(select(func.count()).select_from(Suppression))
        ).scalar_one()
    return events, suppressed


def refused(response: Response) -> bool:
    return response.status_code == 404 and "location" not in response.headers


async def test_tampered_tracking_and_unsubscribe_tokens_are_404(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    sent = await send_one(client, dispatcher, smtp_sink)
    [unsubscribe] = re.findall(
        r"<(https?://[^>]+/u/[^>]+)>", str(smtp_sink.received[-1].message["List-Unsubscribe"])
    )
    tokens = {
        "o": path(sent.pixel).rsplit("/", 1)[1],
        "c": path(sent.links[0]).rsplit("/", 1)[1],
        "u": path(unsubscribe).rsplit("/", 1)[1],
    }
    rng = random.Random(20261120)
    accepted = []
    for kind, token in tokens.items():
        # The state-changing method for every one-character change, both for the rest.
        first, *others = {"o": ["GET", "HEAD"], "c": ["GET", "HEAD"], "u": ["POST", "GET"]}[kind]
        for candidate in one_character_changes(token):
            response = await client.request(first, f"/{kind}/{candidate}")
            if not refused(response):
                accepted.append((first, kind, candidate, response.status_code))
        for candidate in mangled(token, rng):
            for method in (first, *others):
                response = await client.request(method, f"/{kind}/{candidate}")
                if not refused(response):
                    accepted.append((method, kind, candidate, response.status_code))
    assert accepted == []
    # A NUL is no token character: refused (422, as in every URL) before any token check.
    for kind, token in tokens.items():
        assert (await client.get(f"/{kind}/{token}%00")).status_code == 422
        assert (await client.get(f"/{kind}/%00{token[1:]}")).status_code == 422
    assert await recorded(runtime) == (0, 0)
    # The genuine tokens still work: nothing above locked them out.
    assert (await client.get(f"/o/{tokens['o']}")).status_code == 200
    click = await client.get(f"/c/{tokens['c']}")
    assert click.status_code == 302 and click.headers["location"].startswith(
        "https://shop.example/"
    )
    assert (await client.get(f"/u/{tokens['u']}")).status_code == 200
