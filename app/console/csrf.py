"""CSRF tokens for the console's forms: a keyed digest of the sign-in cookie.

No state on the server, as for the cookie itself: a form carries the digest of the cookie
it was rendered for, and a post is taken only when the two match. A page of another site
can neither read the token nor send the cookie (SameSite=Strict); the token stands on its
own should a browser ever send the cookie anyway. A new sign-in is a new cookie, so old
pages' tokens end with the session. Pure: the caller gives the cookie and the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

FIELD = "csrf"


def _key(secret: str) -> bytes:
    # Derived apart from the cookie's own keys (app/dashboard/session.py): one setting, three uses.
    return hmac.new(secret.encode(), b"aftersale-console:csrf", hashlib.sha256).digest()


def token(cookie: str, *, secret: str) -> str:
    """The token forms rendered for the session `cookie` carry."""
    digest = hmac.new(_key(secret), cookie.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def valid(given: str | None, *, cookie: str, secret: str) -> bool:
    """Whether a posted `given` token belongs to `cookie` (compared in constant time)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), token(cookie, secret=secret).encode())
