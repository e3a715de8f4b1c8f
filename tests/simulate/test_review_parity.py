"""A review's follow-up both ways: the service answers the review requests through their
star links (the real SMTP sink, the review pages over HTTP), `aftersale simulate` is told the
same answers by `review.answered` lines; both plan, send and cancel the shipped
rules/review-follow-up.yaml alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from httpx import AsyncClient

from app.config import ROOT
from app.runtime import Runtime
from app.simulate.replay import PLANNED
from tests.conftest import FrozenClock
from tests.outbox.conftest import use_rules
from tests.outbox.test_sequences import Service
from tests.reviews.test_review_flow import star_urls
from tests.simulate.test_parity import COFFEE, DESK, START, _at, _order, through_simulate
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import answer

REQUEST = """
rules:
  - id: review-request
    kind: transactional
    when: {event: order.delivered}
    send: {after: 2d}
    template: product-review
    review: {per: item}
"""
# Delivered Saturday 21 Nov; the requests go Monday 23 Nov, 10:00 UTC.
SENT = START + timedelta(days=3)
# Anna and Boris answer at 14:00 UTC (15:00 in Berlin); Carla too, and changes her mind.
ANSWERED = SENT + timedelta(hours=4)
CHANGED = ANSWERED + timedelta(minutes=10)
APOLOGY_AT = ANSWERED + timedelta(hours=1)  # 16:00 in Berlin: within mon-sat 09-20


def bodies() -> list[dict[str, Any]]:
    orders = [
        _order("7001", "c-anna", "anna@example.org", day=0, items=[DESK, COFFEE]),
        _order("7002", "c-boris", "boris@example.org", day=0, items=[DESK]),
        _order("7003", "c-carla", "carla@example.org", day=0, items=[DESK]),
    ]
    delivered = [
        {
            "id": f"evt-{body['order']['id']}-delivered",
            "type": "order.delivered",
            "occurred_at": _at(1),
            "order": {"id": body["order"]["id"]},
        }
        for body in orders
    ]
    return [*orders, *delivered]


# (order, sku, stars, when): the clicks on the review requests' star links.
CLICKS = [
    ("7001", COFFEE["sku"], 2, ANSWERED),
    ("7002", DESK["sku"], 5, ANSWERED),
    ("7003", DESK["sku"], 1, ANSWERED),
    ("7003", DESK["sku"], 4, CHANGED),
]


def review_lines() -> list[dict[str, Any]]:
    return [
        {
            "type": "review.answered",
            "occurred_at": when.isoformat(),
            "order": {"id": order},
            "rule": "review-request",
            "sku": sku,
            "stars": stars,
        }
        for order, sku, stars, when in CLICKS
    ]


async def test_a_review_follow_up_is_decided_alike_by_the_service_and_simulate(
    client: AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    capsys: Any,
) -> None:
    rules_dir = tmp_path / "review-rules"
    rules_dir.mkdir()
    text = REQUEST + (ROOT / "rules" / "review-follow-up.yaml").read_text().split("rules:")[1]
    use_rules(runtime, rules_dir, text)
    clock.current = START
    service = Service(client, runtime, clock)
    try:
        for body in bodies():
            await service.post(body)
        await service.run_until(SENT)
        # One request per product: the subject names it; the mail goes to its customer.
        requests = {
            (mail.recipients[0], str(mail.message["Subject"])): mail for mail in smtp_sink.received
        }
        assert len(requests) == 4
        emails = {"7001": "anna@example.org", "7002": "boris@example.org"}
        emails["7003"] = "carla@example.org"
        names = {COFFEE["sku"]: COFFEE["name"], DESK["sku"]: DESK["name"]}
        for order, sku, stars, when in CLICKS:
            await service.run_until(when)
            mail = requests[emails[order], f"How do you like your {names[sku]}?"]
            url = star_urls(mail.part("text/html"))[stars]
            assert (await answer(client, url)).status_code == 200
        await service.run_until(datetime(2027, 3, 31, 23, 59, tzinfo=UTC))
    finally:
        await service.dispatcher.sender.close()
    found, _ = await service.found()

    # Anna's 2 stars for the coffee: the apology went an hour later; Boris's 5 planned
    # nothing; Carla's 1 planned one, cancelled when she changed it to 4.
    assert found["7001", "review-follow-up"] == [(PLANNED, None, APOLOGY_AT, None)]
    assert ("7002", "review-follow-up") not in found
    assert found["7003", "review-follow-up"] == [("cancelled", "review_changed", APOLOGY_AT, None)]
    [apology] = [m for m in smtp_sink.received if "let you down" in str(m.message["Subject"])]
    assert apology.recipients == ["anna@example.org"]
    assert "2 out of 5 stars" in apology.part("text/plain")

    simulated = through_simulate([*bodies(), *review_lines()], rules_dir, tmp_path, capsys)
    assert simulated == found
    # Told nothing, simulate plans no follow-up at all.
    quiet = through_simulate(bodies(), rules_dir, tmp_path, capsys)
    assert not any(rule == "review-follow-up" for _, rule in quiet)
