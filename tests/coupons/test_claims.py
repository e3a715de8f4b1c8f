"""Codes handed out as messages are sent: one each, never twice, across several workers."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from app.coupons.service import take_coupon
from app.models import CouponCode, Message
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.coupons.conftest import (
    POOL,
    add_pool,
    code_in_mail,
    codes_by_message,
    seed_messages,
    use_coupon_rule,
)
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import SmtpSink


def pool_empty_count(pool: str = POOL) -> float:
    value = REGISTRY.get_sample_value("aftersale_coupon_pool_empty_total", {"pool": pool})
    return value or 0.0


async def outcomes(runtime: Runtime) -> dict[int, tuple[str, str | None]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(select(Message.id, Message.status, Message.status_reason))
        return {id_: (status, reason) for id_, status, reason in rows}


async def drain(runtime: Runtime, workers: int = 1) -> None:
    dispatchers = [make_dispatcher(runtime, f"worker-{n}") for n in range(workers)]
    try:
        await asyncio.gather(*(worker.drain() for worker in dispatchers))
    finally:
        for worker in dispatchers:
            await worker.sender.close()


async def test_three_workers_share_a_short_pool_without_giving_a_code_twice(
    runtime: Runtime, smtp_sink: SmtpSink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    use_coupon_rule(runtime, tmp_path / "rules")
    runtime.settings.dispatch_batch_size = 5  # small batches, so the workers interleave
    pool = [f"BDAY-{n:03d}" for n in range(25)]
    await add_pool(runtime, pool)
    messages = await seed_messages(runtime, 40)
    empty_before = pool_empty_count()
    with caplog.at_level(logging.WARNING, logger="app.coupons.service"):
        await drain(runtime, workers=3)

    held = await codes_by_message(runtime)
    assert len(held) == 25 and sorted(held.values()) == pool  # every code once, none twice
    mailed = {
        mail.recipients[0]: code_in_mail(mail.part("text/plain")) for mail in smtp_sink.received
    }
    assert len(smtp_sink.received) == len(mailed) == 25
    # Each mail carries the code the database gave its message, and no two the same.
    assert mailed == {address: held[messages[address]] for address in mailed}
    assert max(Counter(mailed.values()).values()) == 1
    # The code is in the HTML part too.
    for mail in smtp_sink.received:
        assert code_in_mail(mail.part("text/plain")) in mail.part("text/html")

    final = await outcomes(runtime)
    skipped = [id_ for id_, outcome in final.items() if outcome == ("skipped", "coupon_pool_empty")]
    assert len(skipped) == 15 and not set(skipped) & set(held)
    assert Counter(status for status, _ in final.values()) == {"sent": 25, "skipped": 15}
    assert pool_empty_count() - empty_before == 15
    warnings = [r.getMessage() for r in caplog.records if "has no free code" in r.getMessage()]
    assert len(warnings) == 15
    assert not any("@" in warning for warning in warnings)  # ids only, no address


async def test_when_empty_send_mails_without_a_code(
    runtime: Runtime, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    use_coupon_rule(runtime, tmp_path / "rules", when_empty="send")
    await add_pool(runtime, ["ONLY-ONE"])
    await seed_messages(runtime, 2)
    empty_before = pool_empty_count()
    await drain(runtime)
    texts = sorted(mail.part("text/plain") for mail in smtp_sink.received)
    assert [code_in_mail(text) for text in texts].count("ONLY-ONE") == 1
    without = [text for text in texts if code_in_mail(text) is None]
    assert len(without) == 1 and "reply to this email before your birthday" in without[0]
    assert {status for status, _ in (await outcomes(runtime)).values()} == {"sent"}
    assert pool_empty_count() - empty_before == 1


async def test_codes_follow_shop_and_expiry(
    runtime: Runtime, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    use_coupon_rule(runtime, tmp_path / "rules")
    now = runtime.clock.now()
    await add_pool(runtime, ["TEA-ONLY"], shop="tea.example")
    await add_pool(runtime, ["STALE"], expires_at=now - timedelta(minutes=1))
    await add_pool(runtime, ["FRESH"], expires_at=now + timedelta(days=30))
    await add_pool(runtime, ["ANY-SHOP"])
    default = await seed_messages(runtime, 2)
    tea = await seed_messages(runtime, 2, shop="tea.example", first=10)
    await drain(runtime)
    held = await codes_by_message(runtime)
    # A shop's own codes go to its customers only; expired ones to nobody; the rest to
    # whoever comes first. Four messages, three usable codes: one goes without.
    assert sorted(held.values()) == ["ANY-SHOP", "FRESH", "TEA-ONLY"]
    assert "TEA-ONLY" in {held.get(id_) for id_ in tea.values()}
    assert "TEA-ONLY" not in {held.get(id_) for id_ in default.values()}
    assert Counter(status for status, _ in (await outcomes(runtime)).values()) == {
        "sent": 3,
        "skipped": 1,
    }
    fresh = next(m for m in smtp_sink.received if code_in_mail(m.part("text/plain")) == "FRESH")
    assert "valid until" in fresh.part("text/plain")


async def test_a_retried_message_keeps_its_code_and_a_failed_one_does_not_return_it(
    runtime: Runtime, smtp_sink: SmtpSink, tmp_path: Path, clock: FrozenClock
) -> None:
    use_coupon_rule(runtime, tmp_path / "rules")
    await add_pool(runtime, ["C-1", "C-2", "C-3"])
    messages = await seed_messages(runtime, 2)
    soft, hard = "user0@example.org", "user1@example.org"
    smtp_sink.rcpt_reply = lambda address: {
        soft: "451 4.3.0 try again later",
        hard: "550 5.1.1 no such user",
    }.get(address)
    await drain(runtime)
    first = await codes_by_message(runtime)
    assert set(first) == set(messages.values())
    assert await outcomes(runtime) == {
        messages[soft]: ("scheduled", None),
        messages[hard]: ("failed", "hard_bounce"),
    }
    smtp_sink.rcpt_reply = lambda _address: None
    clock.advance(seconds=runtime.settings.retry_max_seconds + 1)
    await drain(runtime)
    assert (await outcomes(runtime))[messages[soft]][0] == "sent"
    [mail] = smtp_sink.received
    assert code_in_mail(mail.part("text/plain")) == first[messages[soft]]
    assert await codes_by_message(runtime) == first  # the retry took no second code
    async with runtime.session_factory() as session:
        free = await session.scalar(
            select(func.count()).select_from(CouponCode).where(CouponCode.assigned_at.is_(None))
        )
    assert free == 1  # the bounced message's code is spent, not handed out again


async def test_concurrent_claims_never_share_a_code(runtime: Runtime) -> None:
    """The claim alone, as many at once as the connection pool allows."""
    await add_pool(runtime, [f"P-{n:02d}" for n in range(20)])
    ids = list((await seed_messages(runtime, 30)).values())

    async def claim(message_id: int) -> str | None:
        taken = await take_coupon(
            runtime.session_factory,
            message_id=message_id,
            pool=POOL,
            shop="default",
            now=runtime.clock.now(),
        )
        return taken.code if taken else None

    codes = await asyncio.gather(*(claim(message_id) for message_id in ids))
    given = [code for code in codes if code is not None]
    assert len(given) == len(set(given)) == 20 and codes.count(None) == 10
    assert await codes_by_message(runtime) == {
        message_id: code for message_id, code in zip(ids, codes, strict=True) if code
    }


async def test_one_message_claimed_at_once_by_several_workers_gets_one_code(
    runtime: Runtime,
) -> None:
    """A lease that ran out: two workers on the same message at the same moment."""
    await add_pool(runtime, [f"P-{n:02d}" for n in range(10)])
    [message_id] = (await seed_messages(runtime, 1)).values()
    taken = await asyncio.gather(
        *(
            take_coupon(
                runtime.session_factory,
                message_id=message_id,
                pool=POOL,
                shop="default",
                now=runtime.clock.now(),
            )
            for _ in range(6)
        )
    )
    assert len({coupon.code for coupon in taken if coupon}) == 1 and None not in taken
    assert len(await codes_by_message(runtime)) == 1
