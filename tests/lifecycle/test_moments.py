"""More moments (issue 18 item 3): a welcome when a customer is created (`customer.created`,
with the rule's `if: {orders: 0}` checked when it falls due) and a win-back when a regular
went quiet (`customer.lapsed`, planned by the worker's lapse job). Through the real service
(signed HTTP intake, the jobs, the dispatcher, an SMTP sink) and through `simulate`, which
must agree on every status, reason and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import ValidationError

from app.lifecycle.checks import SendFacts, send_blocker
from app.lifecycle.steps import next_step
from app.planner.customers import lapse, plan_lapses, usual_interval
from app.rules.facts import CustomerFacts
from app.rules.loader import RuleSet
from app.rules.model import Rule
from app.runtime import Runtime
from app.simulate.replay import PLANNED
from app.statuses import MessageStatus
from tests.conftest import FrozenClock
from tests.simulate.test_parity import COFFEE, DIAPERS, START, _about_order, _at, _order, both_ways
from tests.smtp_sink import SmtpSink

RULES = """
rules:
  - id: welcome
    kind: marketing
    when: {event: customer.created}
    send: {after: 1d, expires: 2d}
    if: {orders: 0}
    template: welcome
  - id: win-back
    kind: marketing
    when: {event: customer.lapsed}
    send: {after: 30d, expires: 7d}
    template: win-back
"""


def _signs_up(customer: str, email: str, name: str, *, day: float, consent: bool = True) -> Any:
    return {
        "id": f"evt-{customer}-signup",
        "type": "customer.updated",
        "occurred_at": _at(day),
        "customer": {
            "id": customer,
            "email": email,
            "first_name": name,
            "locale": "en",
            "marketing_consent": consent,
        },
    }


SOFIA = ("c-3001", "sofia@example.org")
TOM = ("c-3002", "tom@example.org")
UMA = ("c-3003", "uma@example.org")
VERA = ("c-3004", "vera@example.org")
WIM = ("c-3005", "wim@example.org")
GRETA = ("c-3101", "greta@example.org")
HANS = ("c-3102", "hans@example.org")
IDA = ("c-3103", "ida@example.org")
JONAS = ("c-3104", "jonas@example.org")
KARLA = ("c-3105", "karla@example.org")


def corpus() -> list[dict[str, Any]]:
    return [
        # Welcomes: Sofia signs up and does not buy; Tom buys before his welcome is due; Uma
        # is made by her first order; Vera gave no consent; Wim's only order is cancelled.
        _signs_up(*SOFIA, "Sofia", day=0),
        _signs_up(*TOM, "Tom", day=1),
        _order("830000000000000201", *TOM, day=1.5, items=[COFFEE]),
        _order("830000000000000301", *UMA, day=2, items=[COFFEE]),
        _signs_up(*VERA, "Vera", day=3, consent=False),
        _signs_up(*WIM, "Wim", day=4),
        _order("830000000000000501", *WIM, day=4.2, items=[COFFEE]),
        _about_order("order.cancelled", "830000000000000501", day=4.5),
        # Lapses. Greta orders every 10 days, then stops: lapsed 10 days after her third.
        _order("830000000000001001", *GRETA, day=0, items=[COFFEE]),
        _order("830000000000001002", *GRETA, day=10, items=[COFFEE]),
        _order("830000000000001003", *GRETA, day=20, items=[COFFEE]),
        # Hans too, but comes back two days before his win-back: it is cancelled, and his
        # next lapse counts from the new order.
        _order("830000000000002001", *HANS, day=0.5, items=[DIAPERS]),
        _order("830000000000002002", *HANS, day=10.5, items=[DIAPERS]),
        _order("830000000000002003", *HANS, day=20.5, items=[DIAPERS]),
        _order("830000000000002004", *HANS, day=58, items=[DIAPERS]),
        # Ida ordered twice: no regular (yet). Jonas's third order is refunded: two stand.
        _order("830000000000003001", *IDA, day=1, items=[COFFEE]),
        _order("830000000000003002", *IDA, day=11, items=[COFFEE]),
        _order("830000000000004001", *JONAS, day=2, items=[COFFEE]),
        _order("830000000000004002", *JONAS, day=12, items=[COFFEE]),
        _order("830000000000004003", *JONAS, day=22, items=[COFFEE]),
        _about_order("order.refunded", "830000000000004003", day=23),
        # Karla's second order the same day is one visit: her rhythm is 10 days, not 5.
        _order("830000000000005001", *KARLA, day=3, items=[COFFEE]),
        _order("830000000000005002", *KARLA, day=3.2, items=[COFFEE]),
        _order("830000000000005003", *KARLA, day=13, items=[COFFEE]),
        _order("830000000000005004", *KARLA, day=23, items=[COFFEE]),
    ]


def _placed(day: float) -> datetime:
    # As _order places it: a moment before the event.
    return datetime.fromisoformat(_at(day, -0.01).replace("Z", "+00:00"))


async def test_welcome_and_win_back_alike_in_the_service_and_simulate(
    client: AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    capsys: Any,
) -> None:
    service, simulated = await both_ways(
        RULES,
        corpus(),
        client=client,
        runtime=runtime,
        clock=clock,
        tmp_path=tmp_path,
        capsys=capsys,
    )

    assert simulated == service
    seen = {key: [one[:3] for one in found] for key, found in service.items()}
    day = timedelta(days=1)
    welcomes = {key[0]: found for key, found in seen.items() if key[1] == "welcome"}
    assert welcomes == {
        SOFIA[0]: [(PLANNED, None, START + day)],
        TOM[0]: [("skipped", "if_orders", START + 2 * day)],
        # Uma, Greta, Hans, Ida, Jonas and Karla were made by their first orders: a welcome
        # for people who have not bought is not planned for them at all.
        VERA[0]: [("skipped", "no_consent", START + 4 * day)],
        # Her only order was cancelled: no standing order, so still welcome.
        WIM[0]: [(PLANNED, None, START + 5 * day)],
    }
    win_backs = {key[0]: found for key, found in seen.items() if key[1] == "win-back"}
    assert win_backs == {
        # Lapsed at her last order + 10 days; the rule sends 30 days after that.
        "830000000000001003": [(PLANNED, None, _placed(20) + 40 * day)],
        # Came back before it went; gaps 10, 10, 37.5: still a 10-day rhythm from day 58.
        "830000000000002003": [("cancelled", "ordered_again", _placed(20.5) + 40 * day)],
        "830000000000002004": [(PLANNED, None, _placed(58) + 40 * day)],
        "830000000000005004": [(PLANNED, None, _placed(23) + 40 * day)],
    }
    sent = [key for key, found in seen.items() for one in found if one[0] == PLANNED]
    assert len(smtp_sink.received) == len(sent) == 5
    mail = {mail.recipients[0]: mail for mail in smtp_sink.received}
    assert str(mail[SOFIA[1]].message["Subject"]) == "Welcome, Sofia! We're glad you're here"
    # The win-back is about the last order: it shows what she bought, one click away.
    assert str(mail[GRETA[1]].message["Subject"]).startswith("We miss you")
    assert "Äthiopien Yirgacheffe" in mail[GRETA[1]].part("text/plain")


def test_the_usual_interval_is_the_median_gap_between_visits() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    days = [base + timedelta(days=n) for n in (0, 10, 20, 50)]
    assert usual_interval(days[:2]) is None  # one gap is no rhythm
    assert usual_interval(days[:3]) == timedelta(days=10)
    assert usual_interval(days) == timedelta(days=10)  # gaps 10, 10, 30
    assert usual_interval([*days[:3], base + timedelta(days=36)]) == timedelta(days=10)
    # Two gaps: their mean; a same-day second order is no gap at all.
    same_day = [
        base,
        base + timedelta(hours=3),
        base + timedelta(days=8),
        base + timedelta(days=20),
    ]
    assert usual_interval(same_day) == timedelta(days=10)
    assert usual_interval(same_day[:3]) is None  # two visits
    found = lapse([(1, days[0]), (2, days[1]), (3, days[2])])
    assert found is not None and (found.last_order_id, found.at) == (3, days[2] + timedelta(10))


def test_a_lapse_is_planned_within_the_horizon_once_per_last_order() -> None:
    rule = Rule.model_validate(
        {
            "id": "win-back",
            "when": {"event": "customer.lapsed"},
            "send": {"after": "30d"},
            "template": "win-back",
        }
    )
    rules = RuleSet(rules=(rule,), version="v")
    base = datetime(2026, 1, 1, 10, tzinfo=UTC)
    orders = [(n, base + timedelta(days=10 * n)) for n in (1, 2, 3)]
    send_at = orders[-1][1] + timedelta(days=40)

    def plan(now: datetime) -> list[str]:
        found = plan_lapses(
            rules=rules,
            customer_id=7,
            orders=orders,
            tz=UTC,  # type: ignore[arg-type]
            now=now,
            horizon=timedelta(days=7),
            customer=CustomerFacts(key="default:c-7"),
        )
        assert all(one.send_at == send_at for one in found)
        return [one.dedupe_key for one in found]

    assert plan(send_at - timedelta(days=8)) == []
    assert plan(send_at - timedelta(days=7)) == ["win-back:lapsed:customer:7:after:3"]
    assert plan(send_at + timedelta(hours=23)) == ["win-back:lapsed:customer:7:after:3"]
    assert plan(send_at + timedelta(days=2)) == []  # long past: not mailed late


def test_the_rule_if_is_checked_at_send_time_and_ends_a_sequence() -> None:
    rule = Rule.model_validate(
        {
            "id": "welcome",
            "when": {"event": "customer.created"},
            "send": {"after": "1h"},
            "if": {"orders": {"max": 1}},
            "template": "welcome",
            "steps": [{"after": "3d", "template": "welcome"}],
        }
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def blocker(orders: int | None) -> tuple[MessageStatus, str] | None:
        facts = SendFacts(
            kind="marketing",
            expires_at=None,
            customer_deleted=False,
            email="a@example.org",
            marketing_consent=True,
            suppressed=False,
            order_status=None,
            condition=rule.if_,
            orders=orders,
        )
        return send_blocker(facts, now=now)

    assert blocker(None) is None  # not counted (planning): not checked
    assert blocker(1) is None
    assert blocker(2) == (MessageStatus.SKIPPED, "if_orders")
    assert (
        next_step(
            rule,
            step=1,
            dedupe_key="k",
            variant=None,
            event_at=now,
            send_at=now,
            status=MessageStatus.SKIPPED,
            reason="if_orders",
            decided_at=now,
            tz=UTC,  # type: ignore[arg-type]
        )
        is None
    )


def _rule(**fields: Any) -> Rule:
    return Rule.model_validate({"id": "r", "template": "t", **fields})


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"when": {"event": "customer.created"}, "send": {"at": "-3d"}},
            "timed with 'after' from the event",
        ),
        (
            {"when": {"event": "customer.lapsed"}, "send": {"learned": {"fallback": "4w"}}},
            "timed with 'after' from the event",
        ),
        (
            {"when": {"event": "customer.lapsed", "items": {"sku": ["X"]}}},
            "apply to order events, not customer.lapsed",
        ),
        (
            {"when": {"event": "customer.created", "first_order": True}},
            "apply to order events, not customer.created",
        ),
        (
            {"when": {"event": "customer.created", "customer": {"orders": {"min": 1}}}},
            "if: {orders: ...} counts them",
        ),
        ({"when": {"event": "order.created"}, "if": {}}, "give a condition"),
        ({"when": {"event": "order.created"}, "if": {"orders": -1}}, "greater than or equal"),
        ({"when": {"event": "order.created"}, "if": {"orders": {"min": 3, "max": 1}}}, "empty"),
        ({"when": {"event": "order.created"}, "if": {"orders": True}}, "valid integer"),
    ],
)
def test_customer_events_and_if_that_cannot_work_are_rule_errors(
    fields: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        _rule(**fields)
