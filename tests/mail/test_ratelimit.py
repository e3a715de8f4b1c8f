from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.mail.ratelimit import SendRateLimiter, TokenBucket
from app.mail.sender import Delivered, SmtpPool
from app.mail.smtp_url import parse_smtp_url
from tests.smtp_sink import SmtpSink

MESSAGE = b"From: shop@example.com\r\nTo: x@example.org\r\nSubject: Hi\r\n\r\nHello\r\n"


class FakeTime:
    """A clock that moves only when someone sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.sent_at: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 9))
        self.now += seconds

    async def take(self, bucket: TokenBucket | SendRateLimiter, *args: str) -> None:
        await bucket.acquire(*args)
        self.sent_at.append(round(self.now - 1000.0, 9))


class QueueTime:
    """Sleeps only record: to see what concurrent callers were told to wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 9))
        await asyncio.sleep(0)


# --- TokenBucket ------------------------------------------------------------------------


async def test_bucket_spaces_messages_evenly() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=2, clock=time.clock, sleep=time.sleep)
    for _ in range(5):
        await time.take(bucket)
    assert time.sent_at == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert time.sleeps == [0.5, 0.5, 0.5, 0.5]


async def test_bucket_per_minute() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=30, per=60, clock=time.clock, sleep=time.sleep)
    for _ in range(3):
        await time.take(bucket)
    assert time.sent_at == [0.0, 2.0, 4.0]


async def test_burst_goes_at_once_then_paces() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=1, burst=3, clock=time.clock, sleep=time.sleep)
    for _ in range(5):
        await time.take(bucket)
    assert time.sent_at == [0.0, 0.0, 0.0, 1.0, 2.0]


async def test_an_idle_bucket_saves_up_no_more_than_its_burst() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=1, burst=2, clock=time.clock, sleep=time.sleep)
    await time.take(bucket)
    time.now += 3600  # an hour without mail
    assert bucket.idle
    for _ in range(4):
        await time.take(bucket)
    assert time.sent_at == [0.0, 3600.0, 3600.0, 3601.0, 3602.0]


async def test_concurrent_callers_queue_in_order() -> None:
    time = QueueTime()
    bucket = TokenBucket(rate=4, clock=time.clock, sleep=time.sleep)
    order: list[int] = []

    async def send(number: int) -> None:
        await bucket.acquire()
        order.append(number)

    await asyncio.gather(*(send(number) for number in range(4)))
    # Each reserved the next slot when it called: no sleep, then 1/4 s more each.
    assert time.sleeps == [0.25, 0.5, 0.75]
    assert sorted(order) == [0, 1, 2, 3]
    assert bucket.delay() == pytest.approx(1.0)


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    time = QueueTime()
    started = asyncio.Event()

    async def sleep_forever(seconds: float) -> None:
        time.sleeps.append(seconds)
        started.set()
        await asyncio.Event().wait()

    bucket = TokenBucket(rate=1, clock=time.clock, sleep=sleep_forever)
    await bucket.acquire()  # the one free token
    waiter = asyncio.create_task(bucket.acquire())
    await started.wait()
    assert bucket.delay() == pytest.approx(2.0)  # behind the waiter
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bucket.delay() == pytest.approx(1.0)


def test_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate=0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(rate=1, burst=0.5)


# --- SendRateLimiter ----------------------------------------------------------------------


async def test_unlimited_by_default_never_sleeps() -> None:
    time = FakeTime()
    limiter = SendRateLimiter(clock=time.clock, sleep=time.sleep)
    assert limiter.unlimited
    for _ in range(100):
        await limiter.acquire("anna@gmail.com")
    assert time.sleeps == []


async def test_each_domain_has_its_own_pace() -> None:
    time = FakeTime()
    limiter = SendRateLimiter(domain_per_minute=60, clock=time.clock, sleep=time.sleep)
    await time.take(limiter, "a@gmail.com")
    await time.take(limiter, "b@yahoo.com")  # another domain: no wait
    await time.take(limiter, "c@GMAIL.com")  # the same domain, any case: waits a second
    assert time.sent_at == [0.0, 0.0, 1.0]


async def test_reserved_domain_slots_are_not_waited_for_again() -> None:
    time = FakeTime()
    limiter = SendRateLimiter(domain_per_minute=60, clock=time.clock, sleep=time.sleep)
    # Slots taken at once come a second apart; an unlimited domain has no wait.
    assert [limiter.reserve(f"k{n}@gmail.com") for n in range(4)] == [0.0, 1.0, 2.0, 3.0]
    assert limiter.reserve("a@example.org") == 0.0
    # Sending on a reserved slot waits for no domain token: the global pace alone holds it.
    await time.take(limiter, "k3@gmail.com")  # not reserved: behind the three reservations
    assert time.sent_at == [4.0]
    time.sent_at.clear()
    await limiter.acquire("k1@gmail.com", domain_reserved=True)
    assert time.sleeps == [4.0]  # only the unreserved one above slept


async def test_domain_overrides() -> None:
    time = FakeTime()
    limiter = SendRateLimiter(
        domain_per_minute=0,
        domain_rates_per_minute={"gmail.com": 30, "Yahoo.com": 0},
        clock=time.clock,
        sleep=time.sleep,
    )
    assert not limiter.unlimited
    for _ in range(3):
        await time.take(limiter, "a@yahoo.com")  # 0: unlimited
        await time.take(limiter, "b@example.org")  # no default: unlimited
    assert time.sleeps == []
    await time.take(limiter, "a@gmail.com")
    await time.take(limiter, "b@gmail.com")
    assert time.sent_at[-2:] == [0.0, 2.0]


async def test_global_rate_covers_every_domain() -> None:
    time = FakeTime()
    limiter = SendRateLimiter(per_second=10, clock=time.clock, sleep=time.sleep)
    for domain in ("a.com", "b.com", "c.com", "d.com"):
        await time.take(limiter, f"x@{domain}")
    assert time.sent_at == [0.0, 0.1, 0.2, 0.3]


async def test_domain_and_global_together() -> None:
    time = FakeTime()
    limiter = SendRateLimiter(
        per_second=2, domain_per_minute=20, clock=time.clock, sleep=time.sleep
    )
    await time.take(limiter, "a@gmail.com")
    await time.take(limiter, "b@yahoo.com")  # global: half a second after the first
    await time.take(limiter, "c@gmail.com")  # gmail: three seconds after the first
    assert time.sent_at == [0.0, 0.5, 3.0]


# --- SmtpPool and settings ----------------------------------------------------------------


async def test_smtp_pool_waits_its_turn_and_delivers_everything(smtp_sink: SmtpSink) -> None:
    time = FakeTime()
    config = replace(
        parse_smtp_url(f"smtp://127.0.0.1:{smtp_sink.port}?starttls=off&timeout=5"),
        domain_rates_per_minute={"gmail.com": 60},
    )
    pool = SmtpPool(config, clock=time.clock, sleep=time.sleep)
    try:
        for recipient in ("a@gmail.com", "b@gmail.com", "c@example.org", "d@gmail.com"):
            outcome = await pool.send(
                envelope_from="shop@example.com", recipient=recipient, message=MESSAGE
            )
            assert isinstance(outcome, Delivered)
    finally:
        await pool.close()
    assert time.sleeps == [1.0, 1.0]
    assert [mail.recipients for mail in smtp_sink.received] == [
        ["a@gmail.com"],
        ["b@gmail.com"],
        ["c@example.org"],
        ["d@gmail.com"],
    ]


def test_settings_carry_rates_into_the_smtp_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AFTERSALE_SMTP_RATE_PER_SECOND", "5")
    monkeypatch.setenv("AFTERSALE_SMTP_DOMAIN_RATE_PER_MINUTE", "120")
    monkeypatch.setenv("AFTERSALE_SMTP_DOMAIN_RATES", " gmail.com=60, Yahoo.COM=30 ,bücher.de=0")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.smtp_domain_rates == {"gmail.com": 60, "yahoo.com": 30, "xn--bcher-kva.de": 0}
    smtp = settings.smtp
    assert smtp.rate_per_second == 5
    assert smtp.domain_rate_per_minute == 120
    assert smtp.domain_rates_per_minute == settings.smtp_domain_rates


def test_settings_default_to_unlimited() -> None:
    smtp = Settings(_env_file=None).smtp  # type: ignore[call-arg]
    assert (smtp.rate_per_second, smtp.domain_rate_per_minute) == (0, 0)
    assert dict(smtp.domain_rates_per_minute) == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("gmail.com", "domain=messages_per_minute"),
        ("gmail.com=fast", "not a number"),
        ("gmail.com=-1", ">= 0"),
        ("not a domain=5", "not a domain name"),
    ],
)
def test_bad_domain_rates_refuse_to_start(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("AFTERSALE_SMTP_DOMAIN_RATES", value)
    with pytest.raises(ValidationError, match=says):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_negative_rates_refuse_to_start() -> None:
    with pytest.raises(ValidationError, match="smtp_rate_per_second"):
        Settings(smtp_rate_per_second=-1, _env_file=None)  # type: ignore[call-arg]
