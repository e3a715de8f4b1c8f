"""Message references: the signed, opaque name of one message in its return path and headers.

A reference is 29 characters of lower-case base32 (safe in a VERP local part, whatever case
a bouncing server keeps) of::

    tag (10 bytes) | message id (8 bytes, big-endian) XOR pad (8 bytes)

where `tag` is HMAC-SHA256 over the id, keyed for this one use from SECRET_KEY, and `pad`
an HMAC of the tag. The id is hidden (no sequence to read off, no neighbour to guess), and
only whoever holds the key can make a reference that reads back: 80 bits of tag. It is
compared in constant time. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

_PURPOSE = b"aftersale-message-reference\x00"
_TAG = 10
_ID = 8
REFERENCE_LENGTH = 29  # base32 of 18 bytes, without padding
_REFERENCE = re.compile(rf"[a-z2-7]{{{REFERENCE_LENGTH}}}")


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()


def _tag(key: bytes, message_id: bytes) -> bytes:
    return hmac.new(key, b"tag" + message_id, hashlib.sha256).digest()[:_TAG]


def _pad(key: bytes, tag: bytes) -> bytes:
    return hmac.new(key, b"pad" + tag, hashlib.sha256).digest()[:_ID]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def make_reference(message_id: int, *, secret: str) -> str:
    """The reference of message `message_id`, signed with `secret` (SECRET_KEY)."""
    if not 0 < message_id < 2**63:
        raise ValueError(f"message id out of range: {message_id}")
    key = _key(secret)
    raw_id = message_id.to_bytes(_ID, "big")
    tag = _tag(key, raw_id)
    raw = tag + _xor(raw_id, _pad(key, tag))
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def read_reference(reference: str, *, secret: str) -> int | None:
    """The message id a reference names, or None for anything we did not sign."""
    reference = reference.strip().lower()
    if not _REFERENCE.fullmatch(reference):
        return None
    try:
        raw = base64.b32decode(reference.upper() + "===")
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _TAG + _ID:
        return None
    key = _key(secret)
    tag, hidden = raw[:_TAG], raw[_TAG:]
    raw_id = _xor(hidden, _pad(key, tag))
    if not hmac.compare_digest(tag, _tag(key, raw_id)):
        return None
    message_id = int.from_bytes(raw_id, "big")
    return message_id if 0 < message_id < 2**63 else None


def verp_address(bounce_address: str, reference: str) -> str:
    """`bounces@mail.example.com` -> `bounces+<reference>@mail.example.com`."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{reference}@{domain}"


def reference_in_address(address: str, bounce_address: str) -> str | None:
    """The reference of a VERP address of `bounce_address`, or None if it is not one."""
    address = address.strip().strip("<>").lower()
    local, _, domain = address.rpartition("@")
    bounce_local, _, bounce_domain = bounce_address.lower().rpartition("@")
    if domain != bounce_domain or not local.startswith(bounce_local + "+"):
        return None
    return local[len(bounce_local) + 1 :] or None
