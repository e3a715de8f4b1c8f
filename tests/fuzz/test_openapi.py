"""Schemathesis over the whole OpenAPI schema, against the app in-process (both databases).

Operator routes get the API key and must answer within their schema: no 5xx, documented
status codes, content types, headers and bodies. Webhook routes get signed bodies where we can
sign them (our own, Shopify's, WooCommerce's), so the generated data reaches the mapping code;
unsigned variants are 401 by design, so for webhooks only "no 5xx" is checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.intake import shopify, signature, woocommerce
from app.main import create_app
from tests.conftest import TEST_API_KEY
from tests.factories import signed_headers

pytestmark = pytest.mark.slow
# The schema is the app's own; built at import so that every operation is its own test.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings(env="development", _env_file=None)).openapi()  # type: ignore[call-arg]
)
SHOP_DOMAIN = "fuzz.example"
SHOPIFY_TOPICS = sorted(shopify.TOPICS)
WOOCOMMERCE_TOPICS = sorted(woocommerce.TOPICS)
SCHEMA_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzz_app(settings: Settings, engine: AsyncEngine) -> Iterator[FastAPI]:
    """An app that owns its runtime: schemathesis runs it in its own event loop thread."""
    yield create_app(settings, role="api")
    asgi.shutdown_lifespans()


def _pick(options: list[str], raw: bytes) -> str:
    # Deterministic per body, so a failing example replays with the same topic.
    return options[hashlib.sha256(raw).digest()[0] % len(options)]


def signed_request(case: Case, settings: Settings) -> dict[str, Any]:
    """Headers (and the exact body bytes) that pass the webhook's signature check."""
    path = case.operation.path
    if not path.startswith("/webhooks/") or isinstance(case.body, NotSet):
        return {}
    try:
        raw = json.dumps(case.body).encode()
    except TypeError:  # a negative example that is no JSON (bytes): sent as generated
        return {}
    if path == "/webhooks/orders":
        return {"data": raw, "headers": signed_headers(raw)}
    if path == "/webhooks/shopify":
        secret = settings.shopify_secrets[0]
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Shop-Domain": SHOP_DOMAIN,
            "X-Shopify-Topic": _pick(SHOPIFY_TOPICS, raw),
            "X-Shopify-Hmac-Sha256": signature.sign_body_base64(secret, raw),
        }
        return {"data": raw, "headers": headers}
    if path == "/webhooks/woocommerce":
        secret = settings.woocommerce_secrets[0]
        headers = {
            "Content-Type": "application/json",
            "X-WC-Webhook-Source": f"https://{SHOP_DOMAIN}/",
            "X-WC-Webhook-Topic": _pick(WOOCOMMERCE_TOPICS, raw),
            "X-WC-Webhook-Signature": signature.sign_body_base64(secret, raw),
        }
        return {"data": raw, "headers": headers}
    return {}


@SCHEMA.parametrize()
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_api_answers_within_its_schema(case: Case, fuzz_app: FastAPI, settings: Settings) -> None:
    auth = {"Authorization": f"Bearer {TEST_API_KEY}"}
    if case.operation.path.startswith("/webhooks/"):
        request = signed_request(case, settings)
        headers = {**auth, **request.pop("headers", {})}
        case.call_and_validate(
            app=fuzz_app, headers=headers, checks=[not_a_server_error], **request
        )
        return
    case.call_and_validate(app=fuzz_app, headers=auth, checks=SCHEMA_CHECKS)
