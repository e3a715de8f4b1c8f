"""What a platform is to intake: the shape of one registry entry (see `registry.py`).

A platform module (`aftersale.py`, `shopify.py`, `woocommerce.py`) fills in one `Platform`:
its webhook route, the settings that hold its secrets, and its mappers from topic to our
events. Adding a platform is one such module, its settings, and a line in the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter

from app.config import Settings
from app.events import Envelope


@dataclass(frozen=True)
class MapContext:
    """What a mapper may need beside the payload: the delivery's id (the event id of what it
    maps to), the time that stands in for payloads without their own, and the settings
    (e.g. WooCommerce's consent meta key)."""

    event_id: str
    received_at: datetime
    settings: Settings
    # The delivery's topic header and shop (product mappers need them: the topic says
    # create, update or delete; product URLs are built on the shop's host).
    topic: str = ""
    shop: str = ""


# A topic's payload -> our events (none: nothing for us in it). Pure; raises PayloadError
# (or KeyError, TypeError, ValueError, which `payloads.run_mapper` turns into one).
Mapped = Envelope | Sequence[Envelope] | None
Mapper = Callable[[dict[str, Any], MapContext], Mapped]


@dataclass(frozen=True)
class ProductIntake:
    """The slot for product webhooks (the catalog): the topics that carry a product, the
    mapper from one payload to the catalog's change (pure; None: nothing to store; raises
    a ValueError naming the field when it cannot read it), and the function that applies
    the change in the delivery's transaction and plans what order items waiting for the
    product now match (returns the number of messages planned; `app/intake/products.py`)."""

    topics: frozenset[str]
    mapper: Callable[[dict[str, Any], MapContext], Any]
    # (session, *, shop, change, now, rules, settings) -> messages planned
    apply: Callable[..., Awaitable[int]]


@dataclass(frozen=True)
class Platform:
    """One source of webhooks."""

    # webhook_deliveries.source, the `source` filter of GET /api/v1/intake/failures.
    source: str
    # The webhook route (POST), and the router that serves it.
    path: str
    router: APIRouter
    # The environment names of the secrets that sign its deliveries (first: the canonical
    # one; the others are accepted aliases), and how to read them from the settings.
    secret_settings: tuple[str, ...]
    secrets: Callable[[Settings], Sequence[str]]
    # Topic -> mapper, for orders and customers (applied to the body read as JSON).
    mappers: Mapping[str, Mapper] = field(default_factory=dict)
    # Instead of `mappers`: reads the raw body and topic itself (our own JSON, whose topic is
    # the type its body claims, and whose errors are the sender's 422).
    body_mapper: Callable[[bytes | str, str], Sequence[Envelope]] | None = None
    # Topics answered 200 and kept raw, with no event (e.g. Shopify's GDPR requests).
    record_only: frozenset[str] = frozenset()
    # Product webhooks (the catalog); without them product topics are not handled.
    products: ProductIntake | None = None

    @property
    def topics(self) -> frozenset[str]:
        """Every topic this platform handles."""
        product_topics = self.products.topics if self.products is not None else frozenset()
        return frozenset(self.mappers) | self.record_only | product_topics

    def product_topic(self, topic: str) -> bool:
        return self.products is not None and topic in self.products.topics
