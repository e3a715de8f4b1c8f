"""Shops as settings and webhooks name them: a host name, and the per-shop settings keyed by
it. Pure, and shared by the settings (app/config.py), intake, the catalog and coupons.

- SHOP_URL, SHOP_URLS (`shop=url`) and REORDER_URL: the links in mail (app/catalog/links.py);
- SHOPIFY_SECRETS, WOOCOMMERCE_SECRETS: `host=secret` for one shop or a bare secret for
  every shop; several at once, so a secret is rotated without refusing deliveries.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from urllib.parse import urlsplit

REORDER_PLACEHOLDERS = ("sku", "quantity", "product_id", "variant_id")
# A shop's host name: what webhooks name a shop by and per-shop settings are keyed by.
_HOST = re.compile(r"^(localhost|[a-z0-9-]+(\.[a-z0-9-]+)+)$")


def normalize_host(value: str | None) -> str | None:
    """The lower-cased host name, or None when `value` is not one."""
    host = (value or "").strip().lower()
    return host if _HOST.match(host) else None


def web_url(value: str, *, setting: str) -> str:
    """`value` if it is an absolute http(s) URL with a host, without a trailing slash."""
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{setting}: {value!r} is not an absolute http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{setting}: {value!r}: the shop's base URL takes no ?query or #part")
    return url.rstrip("/")


def parse_shop_urls(value: str) -> dict[str, str]:
    """`shop=url,shop=url` -> {shop: url}; a shop as intake names it: the Shopify shop
    domain, the WooCommerce site's host, or `default` for our own JSON."""
    found: dict[str, str] = {}
    for entry in value.split(","):
        if not entry.strip():
            continue
        shop, separator, url = entry.partition("=")
        shop = shop.strip().lower()
        if not separator or not shop:
            raise ValueError(
                f"SHOP_URLS: {entry.strip()!r} is not shop=url, "
                "e.g. my-shop.myshopify.com=https://shop.example"
            )
        found[shop] = web_url(url, setting=f"SHOP_URLS ({shop})")
    return found


def check_reorder_template(value: str) -> str:
    """`REORDER_URL`: an absolute http(s) URL whose `{...}` are only the known placeholders."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        raise ValueError(f"REORDER_URL: {exc} in {value!r}") from None
    unknown = sorted({name for name in names if name not in REORDER_PLACEHOLDERS})
    if unknown:
        raise ValueError(
            f"REORDER_URL: unknown placeholder {{{unknown[0]}}}; use "
            + ", ".join(f"{{{name}}}" for name in REORDER_PLACEHOLDERS)
        )
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or "{" in parts.netloc:
        raise ValueError(f"REORDER_URL: {value!r} is not an absolute http:// or https:// URL")
    return value.strip()


# --- webhook secrets -----------------------------------------------------------------------------


def split_secret_entry(entry: str) -> tuple[str | None, str]:
    """`host=secret` -> (host, secret); a bare secret, even one with `=` in it -> (None, secret)."""
    host, separator, secret = entry.partition("=")
    if separator and normalize_host(host) is not None:
        return normalize_host(host), secret.strip()
    return None, entry.strip()


def check_secret_entries(entries: list[str]) -> list[str]:
    """`entries` when each has a secret; ValueError for a `host=` with none after it."""
    for entry in entries:
        host, secret = split_secret_entry(entry)
        if not secret:
            raise ValueError(f"no secret after {host}=")
    return entries


def secrets_for_host(entries: Sequence[str], host: str | None) -> list[str]:
    """The secrets that may sign a delivery from `host`: its own and the ones for every shop."""
    wanted = normalize_host(host)
    secrets = []
    for entry in entries:
        entry_host, secret = split_secret_entry(entry)
        if entry_host is None or entry_host == wanted:
            secrets.append(secret)
    return secrets
