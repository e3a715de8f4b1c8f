"""The sender's circuit breaker: after a run of sender-side failures, stop trying for a while.

A wrong SMTP password or a refused sender fails every message the same way; trying each one
only fills the log and may get the account locked. After `threshold` sender-side failures in
a row the breaker opens: nothing is sent until `paused_until`. Then one message probes the
server; if it goes, sending resumes; if not, the pause doubles, up to `max_wait`. Any reply
that shows the sender side working (a delivery, or a refusal about the recipient) closes it.
Pure: the caller passes the time and records what it learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Pause:
    """Sending is paused until `until`, because of `reason` (the last sender-side failure)."""

    until: datetime
    reason: str
    failures: int
    wait: timedelta


class SenderBreaker:
    def __init__(self, *, threshold: int, first_wait: timedelta, max_wait: timedelta) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self.first_wait = first_wait
        self.max_wait = max_wait
        self._failures = 0
        self.pause: Pause | None = None

    def allows(self, now: datetime) -> bool:
        """Whether a message may be sent at `now`."""
        return self.pause is None or now >= self.pause.until

    def probing(self, now: datetime) -> bool:
        """Paused, and the pause is over: the next send is a probe, one message alone."""
        return self.pause is not None and now >= self.pause.until

    def record_success(self) -> Pause | None:
        """The sender side worked; returns the pause this ends, if any."""
        ended, self.pause, self._failures = self.pause, None, 0
        return ended

    def record_failure(self, now: datetime, reason: str) -> Pause | None:
        """A sender-side failure; returns the new pause if this one (re)opened the breaker."""
        self._failures += 1
        if self.pause is not None:
            if now < self.pause.until:
                return None  # sends already in flight when it opened: the pause stands
            wait = min(self.pause.wait * 2, self.max_wait)  # the probe failed
        elif self._failures >= self.threshold:
            wait = self.first_wait
        else:
            return None
        self.pause = Pause(until=now + wait, reason=reason, failures=self._failures, wait=wait)
        return self.pause
