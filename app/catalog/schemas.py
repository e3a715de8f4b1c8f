"""Our own product JSON (`PUT /api/v1/products`, `aftersale catalog import`), which the
Shopify and WooCommerce mappers produce too, and the catalog API's answers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from app.shops import normalize_host

Platform = Literal["shopify", "woocommerce", "custom"]
PLATFORMS: tuple[Platform, ...] = ("shopify", "woocommerce", "custom")

MAX_PRODUCTS_PER_REQUEST = 1000
MAX_VARIANTS = 2048  # Shopify's own limit per product
MAX_TAGS = 250  # Shopify's own limit per product
MAX_CATEGORIES = 50
MAX_CATEGORY_DEPTH = 10
# What a Shopify taxonomy `full_name` and a category string in our JSON separate levels with.
CATEGORY_SEPARATOR = " > "


DEFAULT_SHOP = "default"  # what POST /webhooks/orders files our own JSON's orders under


def shop_name(value: str) -> str:
    """A shop as its webhooks name it: a host name (lower-cased), or `default`."""
    host = normalize_host(value)
    if host is None and value != DEFAULT_SHOP:
        raise ValueError(f"{value!r} is not a host name (or {DEFAULT_SHOP!r})")
    return host or DEFAULT_SHOP


def _external_id(value: Any) -> Any:
    # Shops send ids as strings or integers of up to 20 digits; keep them exactly, as text.
    if isinstance(value, bool | float):
        raise ValueError("must be a string or an integer")
    if isinstance(value, int):
        return str(value)
    return value


def _category_path(value: Any) -> Any:
    # "Baby & Toddler > Diapering > Diapers" is read as the list of its levels.
    if isinstance(value, str):
        return [part.strip() for part in value.split(CATEGORY_SEPARATOR.strip())]
    return value


ExternalId = Annotated[
    str, BeforeValidator(_external_id), Field(min_length=1, max_length=64, pattern=r"^\S+$")
]
Amount = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]
Url = Annotated[str, Field(max_length=2048, pattern=r"^https?://\S+$")]
Label = Annotated[str, Field(min_length=1, max_length=255)]
CategoryPath = Annotated[
    list[Label],
    BeforeValidator(_category_path),
    Field(min_length=1, max_length=MAX_CATEGORY_DEPTH),
]


class _Body(BaseModel):
    # Unknown fields are refused: a typo in our own JSON should not be silently dropped.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class VariantIn(_Body):
    id: ExternalId | None = Field(
        default=None,
        description="the platform's variant id; without one the variant is matched by SKU, "
        "then by title (Shopify's CSV export has no ids)",
    )
    sku: str | None = Field(default=None, min_length=1, max_length=255)
    title: str | None = Field(
        default=None, max_length=500, description="the variant's own title, e.g. `M / Blue`"
    )
    price: Amount | None = None
    in_stock: bool = True
    inventory_quantity: int | None = Field(default=None, ge=-(2**31), lt=2**31)
    url: Url | None = None
    image_url: Url | None = None
    updated_at: AwareDatetime | None = None


class ProductIn(_Body):
    """One product. A product without options may give `sku`, `price`, `in_stock` and
    `inventory_quantity` itself instead of `variants`: it then has one variant, whose id is
    the product's."""

    id: ExternalId | None = Field(
        default=None, description="the platform's product id; required unless `handle` is given"
    )
    handle: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="the URL slug (Shopify handle, WooCommerce slug)",
    )
    title: str = Field(min_length=1, max_length=500)
    product_type: str | None = Field(default=None, max_length=255)
    vendor: str | None = Field(default=None, max_length=255, description="vendor or brand")
    categories: list[CategoryPath] = Field(
        default_factory=list,
        max_length=MAX_CATEGORIES,
        description='category paths, root first: ["Baby & Toddler", "Diapering", "Diapers"] '
        'or "Baby & Toddler > Diapering > Diapers"',
    )
    tags: list[Label] = Field(default_factory=list, max_length=MAX_TAGS)
    url: Url | None = None
    image_url: Url | None = None
    active: bool = Field(default=True, description="published and for sale")
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    created_at: AwareDatetime | None = Field(
        default=None, description="when the shop created it: what `new arrivals` go by"
    )
    updated_at: AwareDatetime | None = Field(
        default=None,
        description="when the shop last changed it: a product sent with an older one than "
        "the catalog holds is left as it is",
    )
    sku: str | None = Field(default=None, min_length=1, max_length=255)
    price: Amount | None = None
    in_stock: bool | None = None
    inventory_quantity: int | None = Field(default=None, ge=-(2**31), lt=2**31)
    variants: list[VariantIn] = Field(default_factory=list, max_length=MAX_VARIANTS)
    variant_ids: list[ExternalId] | None = Field(
        default=None,
        max_length=MAX_VARIANTS,
        description="when variants are sent apart (WooCommerce variations): the ids of the "
        "product's variants; the catalog's others are removed, these are kept as they are",
    )

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tags))

    @model_validator(mode="after")
    def _identified_and_consistent(self) -> ProductIn:
        if self.id is None and self.handle is None:
            raise ValueError("give the product's id or its handle")
        if self.variants and (self.sku is not None or self.inventory_quantity is not None):
            raise ValueError("give sku and inventory_quantity on the variants, not the product")
        if self.variants and self.variant_ids is not None:
            raise ValueError("give either variants or variant_ids, not both")
        ids = [variant.id for variant in self.variants if variant.id is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("variant ids repeat")
        return self

    def all_variants(self) -> list[VariantIn]:
        """The variants, or the single one a product without `variants` describes itself
        (none when its variants are sent apart)."""
        if self.variants:
            return list(self.variants)
        if self.variant_ids is not None:
            return []
        return [
            VariantIn(
                id=self.id,
                sku=self.sku,
                price=self.price,
                in_stock=True if self.in_stock is None else self.in_stock,
                inventory_quantity=self.inventory_quantity,
                url=self.url,
                image_url=self.image_url,
                updated_at=self.updated_at,
            )
        ]

    def lowest_price(self) -> Decimal | None:
        prices = [v.price for v in self.all_variants() if v.price is not None]
        return min(prices, default=self.price)

    def any_in_stock(self) -> bool:
        variants = self.all_variants()
        if variants and self.in_stock is None:
            return any(variant.in_stock for variant in variants)
        return True if self.in_stock is None else self.in_stock


class ProductsIn(_Body):
    """The body of `PUT /api/v1/products`."""

    shop: str = Field(
        default=DEFAULT_SHOP,
        min_length=1,
        max_length=255,
        description="the shop as its order webhooks name it (Shopify: the myshopify.com "
        "domain; WooCommerce: the site's host; our JSON: `default`)",
    )
    platform: Platform = Field(
        default="custom", description="what the shop runs on: decides how reorder links look"
    )
    currency: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description="the currency of every price that names none",
    )
    products: list[ProductIn] = Field(min_length=1, max_length=MAX_PRODUCTS_PER_REQUEST)

    @field_validator("shop")
    @classmethod
    def _shop(cls, value: str) -> str:
        return shop_name(value)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "shop": "default",
                    "currency": "EUR",
                    "products": [
                        {
                            "id": "diapers-4",
                            "title": "Öko-Windeln Größe 4",
                            "categories": ["Baby & Toddler > Diapering > Diapers"],
                            "vendor": "Lillydoo",
                            "tags": ["eco", "subscription"],
                            "url": "https://shop.example/products/diapers-4",
                            "image_url": "https://shop.example/img/diapers-4.jpg",
                            "sku": "DIAPER-4-44",
                            "price": "13.90",
                        }
                    ],
                }
            ]
        }
    )


class UpsertCounts(BaseModel):
    added: int = Field(description="products new to the catalog")
    updated: int = Field(description="products that changed")
    unchanged: int = Field(description="products the catalog already held exactly so")
    stale: int = Field(description="products sent with an older updated_at than the catalog's")
    items_matched: int = Field(
        default=0,
        description="order items of the last CATALOG_LATE_DAYS days that waited for these "
        "products and are now linked to them",
    )
    messages_planned: int = Field(
        default=0, description="messages of rules that match those items now"
    )


class UnknownSku(BaseModel):
    shop: str
    sku: str = Field(description="the items' SKU; empty when they have none")
    product_id: str | None = Field(
        default=None, description="the shop's product id the items name, if any"
    )
    items: int = Field(description="order items with this SKU")
    orders: int = Field(description="orders with this SKU")
    quantity: int = Field(description="units ordered")
    name: str = Field(description="the item name of its latest order")
    last_ordered_at: datetime | None


class UnknownSkus(BaseModel):
    skus: list[UnknownSku]
