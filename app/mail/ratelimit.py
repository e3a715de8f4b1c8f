"""Sending pace: token buckets that make messages wait their turn instead of failing.

Mail providers throttle (4xx) or junk mail from a sender that arrives faster than they
like, and an SMTP relay may cap messages per second. `SendRateLimiter` holds one bucket
for all mail and one per recipient domain; `SmtpPool.send` waits on it before it takes a
connection, so a slow domain never holds a connection that other domains could use.

The buckets are per process: N worker processes send up to N times the configured rates.
Time and sleeping are injected, so tests run the buckets on a fake clock without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Above this many per-domain buckets, the idle (full) ones are dropped: they hold no
# state that a new bucket would not have.
_MAX_IDLE_DOMAINS = 1000


class TokenBucket:
    """`rate` tokens per `per` seconds, at most `burst` saved up; `acquire` takes one.

    Waiters are served in the order they called: each takes the next free slot at once
    (the balance may go below zero, as a queue of reservations) and sleeps until it comes.
    """

    def __init__(
        self,
        *,
        rate: float,
        per: float = 1.0,
        burst: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not rate > 0 or not per > 0:
            raise ValueError("rate and per must be positive")
        if not burst >= 1:
            raise ValueError("burst must be at least 1")
        self._per_second = rate / per
        self._burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self._burst
        self._updated = clock()

    @property
    def idle(self) -> bool:
        """True when full: nobody is waiting and nothing was taken lately."""
        self._refill()
        return self._tokens >= self._burst

    def delay(self) -> float:
        """Seconds until a token is free if `acquire` were called now."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self._per_second)

    def reserve(self) -> float:
        """Take the next free slot now, and return the seconds until it comes."""
        wait = self.delay()
        self._tokens -= 1
        return wait

    async def acquire(self) -> None:
        """Wait until a token is free and take it."""
        # Reserved before sleeping (no await in between), so callers queue in order.
        wait = self.reserve()
        if wait <= 0:
            return
        try:
            await self._sleep(wait)
        except asyncio.CancelledError:
            # Whoever gave up returns the slot, so those behind it go sooner.
            self._tokens += 1
            raise

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._per_second)


class SendRateLimiter:
    """All mail per second, and mail per minute to each recipient domain; 0 is unlimited.

    `domain_rates_per_minute` overrides the per-domain rate for the domains it names
    (exact, lower-case ASCII domain; 0 there makes that domain unlimited). Messages are
    spaced evenly: 60 a minute to a domain means one a second, never 60 at once.
    """

    def __init__(
        self,
        *,
        per_second: float = 0,
        domain_per_minute: float = 0,
        domain_rates_per_minute: Mapping[str, float] | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._global = (
            TokenBucket(rate=per_second, clock=clock, sleep=sleep) if per_second > 0 else None
        )
        self._domain_default = domain_per_minute
        self._domain_rates = {
            domain.lower(): rate for domain, rate in (domain_rates_per_minute or {}).items()
        }
        self._domains: dict[str, TokenBucket] = {}

    @property
    def unlimited(self) -> bool:
        return (
            self._global is None
            and self._domain_default <= 0
            and not any(rate > 0 for rate in self._domain_rates.values())
        )

    def reserve(self, recipient: str) -> float:
        """Take the next slot of `recipient`'s domain now; the seconds until it comes.

        The caller waits that long (or puts the message aside until then) and sends it with
        `acquire(..., domain_reserved=True)`; a long wait then holds nothing meanwhile.
        """
        bucket = self._domain_bucket(recipient.rpartition("@")[2].lower())
        return 0.0 if bucket is None else bucket.reserve()

    async def acquire(self, recipient: str, *, domain_reserved: bool = False) -> None:
        """Wait until a message to `recipient` may go, by its domain's and the global pace."""
        # The domain first: its wait can be long, and a global slot taken before it would
        # sit unused meanwhile.
        bucket = (
            None if domain_reserved else self._domain_bucket(recipient.rpartition("@")[2].lower())
        )
        if bucket is not None:
            await bucket.acquire()
        if self._global is not None:
            await self._global.acquire()

    def _domain_bucket(self, domain: str) -> TokenBucket | None:
        bucket = self._domains.get(domain)
        if bucket is not None:
            return bucket
        rate = self._domain_rates.get(domain, self._domain_default)
        if rate <= 0:
            return None
        if len(self._domains) >= _MAX_IDLE_DOMAINS:
            self._domains = {name: kept for name, kept in self._domains.items() if not kept.idle}
        bucket = TokenBucket(rate=rate, per=60.0, clock=self._clock, sleep=self._sleep)
        self._domains[domain] = bucket
        return bucket
