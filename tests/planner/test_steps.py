"""Sequences, pure: when the next step is planned and what decides a due step
(app/planner/planner.follow_up, app/lifecycle/steps.py, app/lifecycle/checks.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from app.lifecycle.checks import Purchase, SendFacts, send_blocker
from app.lifecycle.steps import next_step, sequence_facts
from app.planner.planner import first_step_key, held_out_steps, planned_message
from app.rules.loader import load_rules
from app.rules.model import Rule
from app.statuses import MessageKind, MessageStatus

BERLIN = ZoneInfo("Europe/Berlin")
RULE = """rules:
  - id: restock
    kind: marketing
    when: {event: order.created, items: {category: [baby/diapers]}}
    send: {after: 1w, expires: 5d}
    send_window: {days: mon-sat, hours: "09:00-20:00"}
    template: reminder
    holdout: %s
    steps:
      - after: 5d
        template: nudge
        if: {not_opened: true, not_purchased: same_category}
      - {after: 30d, from: event, template: last}
    exit: {purchased: same_category, unsubscribed: true}
"""
KEY = "restock:order:7:customer:3"
EVENT = datetime(2026, 11, 20, 9, 59, tzinfo=UTC)  # a Friday
DIAPERS = Purchase(sku="DIAPER-M", category="baby/diapers")
COFFEE = Purchase(sku="COFFEE", category="coffee/beans")


def rule(tmp_path: Path, holdout: str = "0") -> Rule:
    (tmp_path / "rules.yaml").write_text(RULE % holdout)
    return load_rules(tmp_path).rules[0]


def after(restock: Rule, status: str, reason: str | None, *, at: datetime, step: int = 1):  # type: ignore[no-untyped-def]
    return next_step(
        restock,
        step=step,
        dedupe_key=KEY if step == 1 else f"{KEY}:step:{step}",
        variant=None,
        event_at=EVENT,
        send_at=datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
        status=status,
        reason=reason,
        decided_at=at,
        tz=BERLIN,
    )


def test_the_next_step_counts_from_the_send_and_keeps_to_the_window(tmp_path: Path) -> None:
    restock = rule(tmp_path)
    # Sent Tuesday 1 Dec, 09:30 Berlin: + 5d is Sunday 6 Dec, outside mon-sat: Monday 09:00.
    nudge = after(restock, "sent", None, at=datetime(2026, 12, 1, 8, 30, tzinfo=UTC))
    assert nudge is not None
    assert (nudge.step, nudge.template, nudge.status) == (2, "nudge", MessageStatus.SCHEDULED)
    assert nudge.dedupe_key == f"{KEY}:step:2" and first_step_key(nudge.dedupe_key) == KEY
    assert nudge.send_at == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert nudge.expires_at == datetime(2026, 12, 12, 8, 0, tzinfo=UTC)
    assert nudge.event_at == EVENT
    # Step 3 counts from the event: 30 days after it is Sunday 20 Dec: Monday 09:00 Berlin.
    last = after(restock, "sent", None, at=nudge.send_at, step=2)
    assert last is not None and last.step == 3 and last.dedupe_key == f"{KEY}:step:3"
    assert last.send_at == datetime(2026, 12, 21, 8, 0, tzinfo=UTC)
    # After the last step, nothing.
    assert after(restock, "sent", None, at=last.send_at, step=3) is None


def test_which_outcomes_go_on(tmp_path: Path) -> None:
    restock = rule(tmp_path)
    due = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    late = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    # Skipped by its own `if`: from when it was due, not when it was looked at.
    skipped = after(restock, "skipped", "if_not_opened", at=late, step=2)
    assert skipped is not None and skipped.step == 3
    assert after(restock, "sent", None, at=due).send_at == datetime(  # type: ignore[union-attr]
        2026, 12, 2, 8, 0, tzinfo=UTC
    )
    for status, reason in [
        ("skipped", "no_consent"),
        ("skipped", "exit_purchased"),
        ("skipped", "rebought_same_category"),
        ("skipped", "frequency_cap"),
        ("cancelled", "order_cancelled"),
        ("expired", "past_expiry"),
        ("failed", "hard_bounce"),
    ]:
        assert after(restock, status, reason, at=late) is None, (status, reason)


def test_a_held_out_sequence_is_planned_whole_and_held_out(tmp_path: Path) -> None:
    restock = rule(tmp_path, holdout="99.99")
    first = planned_message(
        restock,
        send_at=datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
        dedupe_key=KEY,
        customer_key="default:c-1",
        event_at=EVENT,
    )
    assert first.status == MessageStatus.HELD_OUT
    steps = held_out_steps(restock, first, tz=BERLIN)
    assert [(s.step, s.status, s.reason, s.dedupe_key) for s in steps] == [
        (2, MessageStatus.HELD_OUT, "holdout", f"{KEY}:step:2"),
        (3, MessageStatus.HELD_OUT, "holdout", f"{KEY}:step:3"),
    ]
    # Fri 27 Nov 09:00 + 5d = Wed 2 Dec; the last 30 days after the event (as above).
    assert steps[0].send_at == datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    assert steps[1].send_at == datetime(2026, 12, 21, 8, 0, tzinfo=UTC)
    scheduled = planned_message(
        rule(tmp_path), send_at=first.send_at, dedupe_key=KEY, customer_key="default:c-1"
    )
    assert held_out_steps(rule(tmp_path), scheduled, tz=BERLIN) == []


def blocker(
    restock: Rule,
    *,
    step: int = 2,
    consent: bool = True,
    kind: str = MessageKind.MARKETING,
    since_previous: list[Purchase] | None = None,
    since_event: list[Purchase] | None = None,
    opened: bool = False,
) -> tuple[MessageStatus, str] | None:
    previous_at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    purchases = [(EVENT.replace(day=25), p) for p in since_event or []]
    purchases += [(previous_at.replace(day=3), p) for p in since_previous or []]
    sequence = sequence_facts(
        restock,
        step=step,
        purchased=[DIAPERS],
        purchases=purchases,
        previous_at=previous_at,
        event_at=EVENT,
        opened=opened,
    )
    facts = SendFacts(
        kind=kind,
        expires_at=None,
        customer_deleted=False,
        email="anna@example.org",
        marketing_consent=consent,
        suppressed=False,
        order_status="open",
        sequence=sequence,
    )
    return send_blocker(facts, now=datetime(2026, 12, 7, 8, 0, tzinfo=UTC))


def test_if_and_exit_decide_a_due_step(tmp_path: Path) -> None:
    restock = rule(tmp_path)
    assert blocker(restock) is None  # not opened, nothing bought: the nudge goes
    assert blocker(restock, opened=True) == (MessageStatus.SKIPPED, "if_not_opened")
    # Coffee is not the same category: neither the `if` nor the exit sees it.
    assert blocker(restock, since_previous=[COFFEE]) is None
    # Diapers bought since the event: the exit ends the sequence first.
    assert blocker(restock, since_event=[DIAPERS]) == (MessageStatus.SKIPPED, "exit_purchased")
    assert blocker(restock, since_previous=[DIAPERS]) == (
        MessageStatus.SKIPPED,
        "exit_purchased",
    )
    # Consent withdrawn: the exit says why, before `no_consent`.
    assert blocker(restock, consent=False) == (MessageStatus.SKIPPED, "exit_unsubscribed")
    # Step 3 has no `if`; the exit still applies.
    assert blocker(restock, step=3, opened=True) is None
    assert blocker(restock, step=3, since_event=[DIAPERS]) == (
        MessageStatus.SKIPPED,
        "exit_purchased",
    )
    # The exit is checked for the first step too.
    assert blocker(restock, step=1, since_event=[DIAPERS]) == (
        MessageStatus.SKIPPED,
        "exit_purchased",
    )


def test_each_condition(tmp_path: Path) -> None:
    def decide(condition: str, **facts: object) -> str | None:
        (tmp_path / "rules.yaml").write_text(
            "rules:\n  - id: r\n    kind: transactional\n    when: {event: order.created}\n"
            f"    template: a\n    steps:\n      - {{after: 1d, template: b, if: {condition}}}\n"
        )
        one = load_rules(tmp_path).rules[0]
        sequence = sequence_facts(
            one,
            step=2,
            purchased=[DIAPERS],
            purchases=[(EVENT.replace(day=25), p) for p in facts.pop("bought", [])],  # type: ignore[attr-defined]
            previous_at=EVENT.replace(day=22),
            event_at=EVENT,
            **facts,  # type: ignore[arg-type]
        )
        assert sequence is not None
        found = send_blocker(
            SendFacts(
                kind="transactional",
                expires_at=None,
                customer_deleted=False,
                email="a@example.org",
                marketing_consent=False,
                suppressed=False,
                order_status="open",
                sequence=sequence,
            ),
            now=EVENT.replace(day=27),
        )
        return found[1] if found else None

    assert decide("{opened: true}") == "if_opened"
    assert decide("{opened: true}", opened=True) is None
    assert decide("{clicked: true}", opened=True) == "if_clicked"
    assert decide("{not_clicked: true}", clicked=True) == "if_not_clicked"
    assert decide("{answered: true}", answered=True) is None
    assert decide("{not_answered: true}", answered=True) == "if_not_answered"
    assert decide("{purchased: any}") == "if_purchased"
    assert decide("{purchased: any}", bought=[COFFEE]) is None
    assert decide("{purchased: same_sku}", bought=[COFFEE]) == "if_purchased"
    assert decide("{purchased: same_sku}", bought=[DIAPERS]) is None
    assert decide("{not_purchased: any}", bought=[COFFEE]) == "if_not_purchased"
    # No exit: a transactional sequence goes on without marketing consent.
    assert decide("{not_purchased: same_category}", bought=[COFFEE]) is None
