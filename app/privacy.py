"""Erasure helpers shared by intake and the outbox.

An erased customer's address must not stay in the database, but a suppression (an
unsubscribe or a hard bounce) must keep working if the shop later sends the same address
again. So the suppression keeps a one-way digest of the address in place of the address.
"""

from __future__ import annotations

import hashlib

DIGEST_PREFIX = "sha256:"


def email_digest(email: str) -> str:
    return DIGEST_PREFIX + hashlib.sha256(email.strip().lower().encode()).hexdigest()
