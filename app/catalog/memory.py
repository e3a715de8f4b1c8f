"""The catalog in memory, for `aftersale simulate --catalog FILE`: products of our JSON (one
per line, as `aftersale catalog import` reads them) found for order items exactly as intake
finds them in the database (`service.match_items`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from app.catalog.schemas import ProductIn
from app.catalog.service import (
    ItemRef,
    ProductMatch,
    _product_values,
    _variant_values,
    match_items,
    missing_product_ids,
)
from app.models import Product, ProductVariant

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MemoryCatalog:
    """One shop's products; a product sent twice is the later one (as an import stores it)."""

    def __init__(self, products: Iterable[ProductIn]) -> None:
        self._products: dict[str, Product] = {}
        self._owner: dict[int, Product] = {}
        self._variants: dict[str, list[ProductVariant]] = {}
        self._by_key: dict[tuple[str, str], list[tuple[ProductVariant, Product]]] = {}
        for incoming in products:
            self._store(incoming.id or incoming.handle or incoming.title, incoming)
        for variants_of in self._variants.values():
            for variant in variants_of:
                product = self._owner[variant.product_id]
                if variant.external_id is not None:
                    self._by_key.setdefault(("id", variant.external_id), []).append(
                        (variant, product)
                    )
                if variant.sku is not None:
                    self._by_key.setdefault(("sku", variant.sku), []).append((variant, product))

    def _store(self, key: str, incoming: ProductIn) -> None:
        previous = self._products.get(key)
        row_id = previous.id if previous is not None else len(self._products) + 1
        row = Product(
            id=row_id,
            shop="simulate",
            first_seen_at=incoming.created_at or _EPOCH,
            **_product_values(incoming, platform="custom", currency=None),
        )
        self._products[key] = row
        self._owner[row_id] = row
        self._variants[key] = [
            ProductVariant(
                id=row_id * 10_000 + position,
                product_id=row_id,
                shop="simulate",
                position=position,
                **_variant_values(variant, external_id=variant.id),
            )
            for position, variant in enumerate(incoming.all_variants())
        ]

    def __len__(self) -> int:
        return len(self._products)

    def find(
        self, items: Sequence[tuple[str | None, str | None, str | None]]
    ) -> list[ProductMatch | None]:
        """As `service.find_products_for_items`: by variant id, else product id, else SKU."""
        refs = [ItemRef(*item) for item in items]
        keys = {("id", ref.variant_id) for ref in refs if ref.variant_id}
        keys |= {("id", ref.product_id) for ref in refs if ref.product_id}
        keys |= {("sku", ref.sku) for ref in refs if ref.sku}
        seen: set[int] = set()
        pairs: list[tuple[ProductVariant, Product]] = []
        for key in sorted(keys):
            for pair in self._by_key.get(key, []):
                if pair[0].id not in seen:
                    seen.add(pair[0].id)
                    pairs.append(pair)
        # Items whose variant is not among those: their product by its id, as the database
        # looks it up second.
        products = {
            product_id: self._products[product_id]
            for product_id in missing_product_ids(refs, pairs)
            if product_id in self._products
        }
        return match_items(refs, pairs, products)
