"""A body validated once for the type it claims gives what validating the envelope first gives:
the same event when it is valid, the same errors when it is not."""

from __future__ import annotations

import json

import pytest
from httpx import AsyncClient
from pydantic import ValidationError

from app.events import CustomerUpdated, OrderPlaced, parse_body
from tests.factories import order_created, post_event


def test_a_valid_body_parses_alike_with_or_without_its_claimed_type() -> None:
    body = json.dumps(order_created()).encode()
    event = parse_body(body, claimed_type="order.created")
    assert isinstance(event, OrderPlaced)
    assert event == parse_body(body)


def test_a_wrong_claim_does_not_choose_the_model() -> None:
    # An order body also passes as a customer update (unknown fields are ignored): the
    # body's own type decides, as it does when the envelope is validated first.
    body = json.dumps(order_created()).encode()
    assert isinstance(parse_body(body, claimed_type="customer.updated"), OrderPlaced)
    assert isinstance(parse_body(body, claimed_type="order.refunded"), OrderPlaced)
    update = {**order_created(), "type": "customer.updated"}
    assert isinstance(parse_body(json.dumps(update), claimed_type="order.created"), CustomerUpdated)


def test_an_invalid_envelope_is_reported_alone_whatever_the_claim() -> None:
    body = order_created()
    del body["occurred_at"]
    body["order"]["total"] = "forty"
    raw = json.dumps(body).encode()
    for claimed in (None, "order.created"):
        with pytest.raises(ValidationError) as invalid:
            parse_body(raw, claimed_type=claimed)
        assert [error["loc"] for error in invalid.value.errors()] == [("occurred_at",)]


async def test_the_sender_is_told_the_envelope_errors_first(client: AsyncClient) -> None:
    body = order_created()
    del body["occurred_at"]
    body["order"]["total"] = "forty"
    response = await post_event(client, body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "occurred_at"]]
