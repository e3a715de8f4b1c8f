"""Tracking tokens: which tracked link (or pixel) a request names, signed so none can be forged.

A token is urlsafe base64 (no padding) of::

    version (1) | masked link id (8) | issued at (4) | nonce (16) | HMAC-SHA256, truncated (16)

The link id is the `tracked_links` row, which names the message and the link. It is XORed
with a pad derived from the nonce and the secret, so tokens show no sequence that would tell
how much mail is sent. The nonce (128 random bits) is also stored on the row and compared
there, so a token stays unguessable even to someone who learnt a secret. The MAC covers a
purpose label, the use (open or click), the version, the plain id, the issue time and the
nonce. `issued at` (unix seconds) lets an old token be refused before the database is asked.

Tokens are signed with the first secret and accepted under any of them, so a secret is
rotated by putting a new one first; dropping a secret breaks the links it signed.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
import secrets as random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_VERSION = 1
NONCE_SIZE = 16
_MAC_SIZE = 16  # 128 bits of HMAC-SHA256: far beyond guessing, and a shorter URL
_ID_SIZE = 8
_TIME_SIZE = 4
_SIZE = 1 + _ID_SIZE + _TIME_SIZE + NONCE_SIZE + _MAC_SIZE
# Keys the MAC and the id pad to tracking, so no other feature's signature can pass for one.
_PURPOSE = b"aftersale-tracking\x00"
_PAD = b"aftersale-tracking-id\x00"
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]{60}")


class TokenUse(enum.StrEnum):
    """What a token opens: a pixel token never works as a click token, nor the reverse."""

    OPEN = "o"
    CLICK = "c"
    # A survey token names a message, not a link, and its nonce is stored nowhere
    # (app/survey/tokens.py); it is signed with the survey secrets.
    SURVEY = "s"
    # The other survey kinds (app/survey/scales.py): the kind is signed with the token, so
    # a link's scale cannot be changed by editing it. "s" stays NPS, as it always was.
    SURVEY_CSAT = "s-csat"
    SURVEY_CES = "s-ces"
    # A product review link (app/reviews/tokens.py): one message's item, signed with the
    # survey secrets; never a survey answer, nor the reverse.
    REVIEW = "r"


@dataclass(frozen=True)
class TokenClaims:
    link_id: int
    nonce: bytes
    issued_at: datetime


def new_nonce() -> bytes:
    return random.token_bytes(NONCE_SIZE)


def make_token(
    *, use: TokenUse, link_id: int, nonce: bytes, issued_at: datetime, secrets: Sequence[str]
) -> str:
    """A token for the tracked link `link_id`, signed with the first of `secrets`."""
    if not secrets:
        raise ValueError("at least one tracking secret is needed to sign tokens")
    if len(nonce) != NONCE_SIZE or not 0 < link_id < 2 ** (8 * _ID_SIZE):
        raise ValueError("a tracking token needs a 16-byte nonce and a positive link id")
    plain_id = link_id.to_bytes(_ID_SIZE, "big")
    issued = int(issued_at.timestamp()).to_bytes(_TIME_SIZE, "big")
    secret = secrets[0]
    raw = (
        bytes([_VERSION])
        + _xor(plain_id, _pad(secret, nonce))
        + issued
        + nonce
        + _mac(secret, use, plain_id, issued, nonce)
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def read_token(
    token: str, *, use: TokenUse, secrets: Sequence[str], now: datetime, max_age: timedelta
) -> TokenClaims | None:
    """What a token names, or None when it is not ours, not for `use`, or older than `max_age`.

    Callers must not say why a token failed: tampered, foreign, expired and garbled look alike.
    """
    raw = _decode(token)
    if raw is None or raw[0] != _VERSION:
        return None
    masked = raw[1 : 1 + _ID_SIZE]
    issued = raw[1 + _ID_SIZE : 1 + _ID_SIZE + _TIME_SIZE]
    nonce = raw[-NONCE_SIZE - _MAC_SIZE : -_MAC_SIZE]
    mac = raw[-_MAC_SIZE:]
    found: bytes | None = None
    for secret in secrets:  # no early exit: timing does not tell which key matched
        plain_id = _xor(masked, _pad(secret, nonce))
        if hmac.compare_digest(mac, _mac(secret, use, plain_id, issued, nonce)):
            found = plain_id
    if found is None:
        return None
    link_id = int.from_bytes(found, "big")
    issued_at = datetime.fromtimestamp(int.from_bytes(issued, "big"), UTC)
    if link_id == 0 or now - issued_at > max_age:
        return None
    return TokenClaims(link_id=link_id, nonce=nonce, issued_at=issued_at)


def _mac(secret: str, use: TokenUse, plain_id: bytes, issued: bytes, nonce: bytes) -> bytes:
    body = _PURPOSE + use.value.encode() + bytes([_VERSION]) + plain_id + issued + nonce
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()[:_MAC_SIZE]


def _pad(secret: str, nonce: bytes) -> bytes:
    return hmac.new(secret.encode(), _PAD + nonce, hashlib.sha256).digest()[:_ID_SIZE]


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _decode(token: str) -> bytes | None:
    if not _TOKEN_CHARS.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == _SIZE else None
