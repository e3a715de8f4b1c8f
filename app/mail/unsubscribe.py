"""Unsubscribe tokens: whom a link (or a mailto: address) unsubscribes, signed so nobody can
forge one, and opaque: the token holds a customer id, never the address.

A token is 40 characters of lower-case base32 (RFC 4648, no padding) of::

    version 2 (1 byte) | customer id (8 bytes, big-endian) | HMAC-SHA256, first 16 bytes

The HMAC, keyed with an unsubscribe secret, covers a purpose label, the version and the id.
Lower-case base32 survives mail servers that change the case of a local part, so the same
token serves in `https://…/u/<token>` and in `mailto:unsubscribe+<token>@<inbound domain>`
(52 characters, within the 64 a local part may have). It never expires, because unsubscribe
links must work for years. Tokens are signed with the first secret and accepted under any of
them, so a new key can be put first while old links still verify.

Links sent before this format (version 1: urlsafe base64 of version | HMAC | JSON
`[shop, email]`) still verify, so mail already in inboxes keeps working.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.models import MessageKind

_VERSION = 2
_LEGACY_VERSION = 1
_ID_SIZE = 8
_MAC_SIZE = 16  # 128 bits: forging one is out of reach
_FULL_MAC_SIZE = hashlib.sha256().digest_size
# Keys the MAC to this one use, so a signature can never pass for another feature's.
_PURPOSE = b"aftersale-unsubscribe\x00"
TOKEN_LENGTH = 40
_TOKEN = re.compile(r"[a-z2-7]{40}")
_LEGACY_CHARS = re.compile(r"[A-Za-z0-9_-]+")
# The longest token read: a legacy one with a 255-character shop and a 320-character address.
MAX_TOKEN_LENGTH = 2048
# A token for no customer: previews and test sends carry it; using it changes nothing.
SAMPLE_CUSTOMER_ID = 0
MAILTO_PREFIX = "unsubscribe+"


@dataclass(frozen=True)
class CustomerToken:
    """A token of the current format: the customer it was sent to."""

    customer_id: int


@dataclass(frozen=True)
class AddressToken:
    """A token of the old format, still honoured: an address (lower-cased) of one shop."""

    shop: str
    email: str


Recipient = CustomerToken | AddressToken


def make_token(*, customer_id: int, secrets: Sequence[str]) -> str:
    """A token for the customer, signed with the first of `secrets`."""
    if not secrets:
        raise ValueError("at least one unsubscribe secret is needed to sign tokens")
    if not 0 <= customer_id < 2**63:
        raise ValueError(f"customer id out of range: {customer_id}")
    body = bytes([_VERSION]) + customer_id.to_bytes(_ID_SIZE, "big")
    raw = body + _mac(secrets[0], body)[:_MAC_SIZE]
    return base64.b32encode(raw).decode("ascii").lower()


def read_token(token: str, *, secrets: Sequence[str]) -> Recipient | None:
    """Whom a token names, or None for anything not signed by one of `secrets`.

    Callers should not say why a token failed: tampered, foreign and garbled look alike.
    """
    if _TOKEN.fullmatch(token):
        raw = base64.b32decode(token.upper())
        body, mac = raw[: 1 + _ID_SIZE], raw[1 + _ID_SIZE :]
        if body[0] != _VERSION or not _verified(secrets, body, mac, size=_MAC_SIZE):
            return None
        return CustomerToken(customer_id=int.from_bytes(body[1:], "big"))
    return _read_legacy(token, secrets)


def unsubscribe_url(*, public_url: str, customer_id: int, secrets: Sequence[str]) -> str:
    """The one-click link: `{public_url}/u/{token}`."""
    token = make_token(customer_id=customer_id, secrets=secrets)
    return f"{public_url.rstrip('/')}/u/{token}"


def marketing_unsubscribe_url(
    *, kind: str, public_url: str, customer_id: int, secrets: Sequence[str]
) -> str | None:
    """The link for a message of `kind`: marketing mail has one, transactional mail none."""
    if kind != MessageKind.MARKETING:
        return None
    return unsubscribe_url(public_url=public_url, customer_id=customer_id, secrets=secrets)


def unsubscribe_mailto(*, customer_id: int, domain: str, secrets: Sequence[str]) -> str:
    """`mailto:unsubscribe+<token>@<domain>`, the List-Unsubscribe address the inbound
    listener answers (`unsubscribe_from_mail`)."""
    token = make_token(customer_id=customer_id, secrets=secrets)
    return f"mailto:{MAILTO_PREFIX}{token}@{domain}"


def marketing_unsubscribe_mailto(
    *, kind: str, customer_id: int, domain: str | None, secrets: Sequence[str]
) -> str | None:
    """The mailto: for a message of `kind`: marketing mail has one when an inbound domain
    (INBOUND_DOMAIN) is configured, so a mail to it reaches the inbound listener."""
    if kind != MessageKind.MARKETING or not domain:
        return None
    return unsubscribe_mailto(customer_id=customer_id, domain=domain, secrets=secrets)


def unsubscribe_from_mail(local_part: str, *, secrets: Sequence[str]) -> CustomerToken | None:
    """The customer a mail to `unsubscribe+<token>@…` unsubscribes, from the recipient's
    local part (`unsubscribe+<token>`, any case); None when it is not one of ours.

    Pure: the inbound listener calls it for each recipient, then
    `app.unsubscribe.service.unsubscribe_by_mail` to apply it."""
    local = local_part.strip().lower()
    if not local.startswith(MAILTO_PREFIX):
        return None
    token = local[len(MAILTO_PREFIX) :]
    if not _TOKEN.fullmatch(token):
        return None
    found = read_token(token, secrets=secrets)
    return found if isinstance(found, CustomerToken) else None


def _mac(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE + body, hashlib.sha256).digest()


def _verified(secrets: Sequence[str], body: bytes, mac: bytes, *, size: int) -> bool:
    valid = False
    for secret in secrets:  # no early exit: timing does not tell which key matched
        valid |= hmac.compare_digest(mac, _mac(secret, body)[:size])
    return valid


def _read_legacy(token: str, secrets: Sequence[str]) -> AddressToken | None:
    """A version 1 token, as links sent before the opaque format carry."""
    raw = _decode_legacy(token)
    if raw is None or len(raw) <= 1 + _FULL_MAC_SIZE or raw[0] != _LEGACY_VERSION:
        return None
    version, mac, payload = raw[:1], raw[1 : 1 + _FULL_MAC_SIZE], raw[1 + _FULL_MAC_SIZE :]
    if not _verified(secrets, version + payload, mac, size=_FULL_MAC_SIZE):
        return None
    try:
        parsed = json.loads(payload.decode())
    except ValueError:  # UnicodeDecodeError and JSONDecodeError both are
        return None
    if not (isinstance(parsed, list) and len(parsed) == 2):
        return None
    shop, email = parsed
    if not isinstance(shop, str) or not isinstance(email, str) or not email:
        return None
    return AddressToken(shop=shop, email=email)


def _decode_legacy(token: str) -> bytes | None:
    if len(token) > MAX_TOKEN_LENGTH or not _LEGACY_CHARS.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    # Only the one canonical spelling of a token is accepted (no stray trailing bits).
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        return None
    return raw
