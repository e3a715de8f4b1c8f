"""The dashboard's login cookie: an expiry and a digest of the API key, signed with HMAC.

No state on the server: the cookie says until when it is good and which key logged in,
as a keyed digest (the key itself never leaves the login form). Each request finds the
key again among API_KEYS, so revoking or removing the key ends its sessions at once, and
changing SESSION_SECRET ends them all. Pure: the caller gives the time and the keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

COOKIE_NAME = "aftersale_dashboard"
COOKIE_PATH = "/dashboard"
LIFETIME = timedelta(hours=12)
_VERSION = "v1"
_SECONDS = re.compile(r"[0-9]{1,12}")


def _subkey(secret: str, purpose: bytes) -> bytes:
    # One setting, two uses: keys derived apart, so a key digest can never pass as a signature.
    return hmac.new(secret.encode(), b"aftersale-dashboard:" + purpose, hashlib.sha256).digest()


def key_digest(api_key: str, *, secret: str) -> str:
    """The API key as the cookie names it: keyed, so it cannot be guessed back offline."""
    digest = hmac.new(_subkey(secret, b"key"), api_key.encode(), hashlib.sha256).digest()
    return _b64(digest)


def _signature(payload: str, secret: str) -> str:
    return _b64(hmac.new(_subkey(secret, b"sign"), payload.encode(), hashlib.sha256).digest())


def issue(api_key: str, *, secret: str, now: datetime) -> str:
    """A cookie value good for LIFETIME from `now`, for `api_key`."""
    expires = int((now + LIFETIME).timestamp())
    payload = f"{_VERSION}.{expires}.{key_digest(api_key, secret=secret)}"
    return f"{payload}.{_signature(payload, secret)}"


def read(value: str | None, *, secret: str, now: datetime) -> str | None:
    """The key digest of a cookie that is ours, unaltered and not expired; else None."""
    if not value:
        return None
    payload, _, signature = value.rpartition(".")
    version, _, rest = payload.partition(".")
    expires, _, digest = rest.partition(".")
    if version != _VERSION or not _SECONDS.fullmatch(expires) or not digest:
        return None
    if not hmac.compare_digest(signature.encode(), _signature(payload, secret).encode()):
        return None
    if int(expires) <= now.timestamp():
        return None
    return digest


def key_of(digest: str, *, keys: Sequence[str], secret: str) -> str | None:
    """The one of `keys` whose digest is `digest`, or None (the key was removed)."""
    found = None
    for key in keys:  # every key compared, no early exit: timing tells nothing
        if hmac.compare_digest(digest.encode(), key_digest(key, secret=secret).encode()):
            found = key
    return found


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
