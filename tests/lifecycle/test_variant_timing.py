"""A/B variants that differ by timing: each customer's variant sets its own delay, through
the real service and through `simulate` alike."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import ValidationError

from app.rules.model import Rule
from app.runtime import Runtime
from app.simulate.replay import PLANNED
from tests.conftest import FrozenClock
from tests.simulate.test_parity import (
    DIAPERS,
    _instant,
    _order,
    both_ways,
)
from tests.smtp_sink import SmtpSink

RULES = """
rules:
  - id: restock-timing
    kind: transactional
    when: {event: order.created, items: {category: [baby/diapers]}}
    send: {after: 5d, expires: 2d}
    variants:
      - {template: diapers-restock, name: early, after: 3d}
      - {template: diapers-restock, name: usual}
"""


async def test_each_variant_sends_after_its_own_delay(
    client: AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    capsys: Any,
) -> None:
    bodies = [
        _order(
            f"82098291194615{6000 + n}",
            f"c-30{n:02d}",
            f"parent{n}@example.org",
            day=n / 4,
            items=[DIAPERS],
            time_zone=None,
        )
        for n in range(12)
    ]
    placed = {body["order"]["id"]: _instant(body["order"]["created_at"]) for body in bodies}
    service, simulated = await both_ways(
        RULES,
        bodies,
        client=client,
        runtime=runtime,
        clock=clock,
        tmp_path=tmp_path,
        capsys=capsys,
    )

    assert simulated == service
    delays = {"early": timedelta(days=3), "usual": timedelta(days=5)}
    seen = set()
    for (order_id, _), [(status, _reason, sent_at, variant)] in service.items():
        assert status == PLANNED
        assert sent_at == placed[order_id] + delays[variant]
        seen.add(variant)
    assert seen == {"early", "usual"}  # twelve customers draw both


def test_a_variant_delay_needs_a_plain_delay() -> None:
    with pytest.raises(ValidationError, match="does not go with"):
        Rule.model_validate(
            {
                "id": "r",
                "when": {"event": "order.created"},
                "send": {"supply": {"days_per_unit": 10}},
                "variants": [{"template": "a", "after": "3d"}, {"template": "b"}],
            }
        )
    with pytest.raises(ValidationError, match="after"):
        Rule.model_validate(
            {
                "id": "r",
                "when": {"event": "order.created"},
                "variants": [{"template": "a", "after": "3 days"}, {"template": "b"}],
            }
        )
