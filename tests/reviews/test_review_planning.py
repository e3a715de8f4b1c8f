"""`review: {per: item}` plans in the shared core: simulate (the memory store) plans one
request per distinct product, as the service does (tests/reviews/test_review_flow.py);
the rule key and `if: {stars}` are validated where they apply."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.planner.planner import review_item_position
from app.rules.model import Rule
from tests.simulate.factories import (
    PLACED,
    by_rule,
    created,
    days,
    item,
    order_event,
    replay,
    rules_in,
)

PER_ITEM = """
rules:
  - id: review-request
    kind: transactional
    when: {event: order.delivered}
    send: {after: 2d, fallback: {after: 5d}}
    template: product-review
    review: {per: item}
"""


def test_simulate_plans_one_request_per_distinct_product(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, PER_ITEM)
    two_of_a_kind = [item("MUG"), item("MUG"), item("TEAPOT")]
    result = replay(
        rules,
        created("1", items=two_of_a_kind),
        order_event("delivered", "1", at=PLACED + days(1)),
    )
    # Two lines of one mug: one request; the teapot its own. From the delivery, 2 days on
    # (the per-item fallbacks from the fulfilment it implied are replaced, not sent).
    planned = [o for o in by_rule(result)["review-request"] if o.status == "planned"]
    assert [o.send_at for o in planned] == [PLACED + days(3)] * 2


def test_per_item_keys_survive_the_delivered_and_step_suffixes() -> None:
    key = "r:order:1:customer:2:item:3"
    assert review_item_position(key) == 3
    assert review_item_position(key + ":delivered") == 3
    assert review_item_position(key + ":delivered:step:2") == 3
    assert review_item_position("r:order:1:customer:2") is None


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        (
            {"when": {"event": "order.created"}, "review": {"per": "item"}},
            "use it on order.fulfilled or order.delivered",
        ),
        (
            {"when": {"event": "order.fulfilled"}, "if": {"stars": {"max": 2}}},
            "applies to review.answered",
        ),
        ({"when": {"event": "review.answered"}, "if": {"stars": {"max": 6}}}, "less than or equal"),
        ({"when": {"event": "review.answered"}, "if": {"stars": {"min": 4, "max": 2}}}, "above"),
    ],
)
def test_review_keys_are_checked_where_they_apply(rule: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        Rule.model_validate({"id": "r", "template": "t", **rule})


def test_a_review_answered_rule_is_timed_with_after() -> None:
    rule = Rule.model_validate(
        {
            "id": "sorry",
            "template": "t",
            "when": {"event": "review.answered"},
            "send": {"after": "1h"},
            "if": {"stars": {"max": 2}},
        }
    )
    assert rule.if_ is not None and rule.if_.stars is not None
    assert rule.if_.stars.matches(2) and not rule.if_.stars.matches(3)
