"""The sender's circuit breaker: a run of sender-side failures pauses, a probe resumes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.mail.breaker import SenderBreaker

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def breaker() -> SenderBreaker:
    return SenderBreaker(
        threshold=3, first_wait=timedelta(seconds=30), max_wait=timedelta(seconds=100)
    )


def test_opens_after_threshold_failures_in_a_row() -> None:
    b = breaker()
    assert b.record_failure(T0, "535 5.7.8 bad credentials") is None
    assert b.record_failure(T0, "535 5.7.8 bad credentials") is None
    assert b.allows(T0)
    pause = b.record_failure(T0, "535 5.7.8 bad credentials")
    assert pause is not None
    assert (pause.until, pause.failures, pause.reason) == (
        T0 + timedelta(seconds=30),
        3,
        "535 5.7.8 bad credentials",
    )
    assert not b.allows(T0 + timedelta(seconds=29))
    # Failures of sends already in flight do not lengthen the pause.
    assert b.record_failure(T0 + timedelta(seconds=1), "again") is None
    assert b.pause == pause


def test_a_success_between_failures_resets_the_count() -> None:
    b = breaker()
    b.record_failure(T0, "x")
    b.record_failure(T0, "x")
    assert b.record_success() is None  # nothing was paused
    b.record_failure(T0, "x")
    b.record_failure(T0, "x")
    assert b.allows(T0) and b.pause is None


def test_failed_probes_double_the_wait_up_to_the_max_and_a_good_probe_closes() -> None:
    b = breaker()
    for _ in range(3):
        b.record_failure(T0, "x")
    assert b.pause is not None
    now = b.pause.until
    assert b.allows(now) and b.probing(now)
    waits = []
    for _ in range(4):
        pause = b.record_failure(now, "still failing")
        assert pause is not None
        waits.append(pause.wait.total_seconds())
        now = pause.until
    assert waits == [60, 100, 100, 100]
    ended = b.record_success()
    assert ended is not None and ended.reason == "still failing"
    assert b.pause is None and not b.probing(now)
    # Closed again: it takes a whole new run to pause, and the wait starts over.
    for _ in range(3):
        last = b.record_failure(now, "x")
    assert last is not None and last.wait == timedelta(seconds=30)
