"""Review tokens: which message and which of its items a `/r/{token}/{stars}` link rates.

The survey token's format and secrets (app/survey/tokens.py) with the review use, so a
review link never passes for a survey answer. The signed id carries the message and the
item's position in its order: the low 16 bits the position, the rest the message id, so
no item of another message (or order) can be rated by editing a link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.tracking.tokens import TokenUse, make_token, new_nonce, read_token

_POSITION_BITS = 16
MAX_POSITION = (1 << _POSITION_BITS) - 1
# What previews and test sends link to: the pages show, nothing is recorded.
SAMPLE_TOKEN = "sample"  # noqa: S105 (not a secret: a link that names no message)


@dataclass(frozen=True)
class ReviewClaims:
    message_id: int
    position: int
    issued_at: datetime


def make_review_token(
    *, message_id: int, position: int, issued_at: datetime, secrets: Sequence[str]
) -> str:
    """A token for the item at `position` of `message_id`'s order, signed with the first
    of `secrets`."""
    if not 0 <= position <= MAX_POSITION:
        raise ValueError(f"an item position is 0..{MAX_POSITION}")
    return make_token(
        use=TokenUse.REVIEW,
        link_id=(message_id << _POSITION_BITS) | position,
        nonce=new_nonce(),
        issued_at=issued_at,
        secrets=secrets,
    )


def read_review_token(
    token: str, *, secrets: Sequence[str], now: datetime, max_age: timedelta
) -> ReviewClaims | None:
    """The message and item a token rates; None when it is not ours or too old."""
    claims = read_token(token, use=TokenUse.REVIEW, secrets=secrets, now=now, max_age=max_age)
    if claims is None or claims.link_id >> _POSITION_BITS == 0:
        return None
    return ReviewClaims(
        message_id=claims.link_id >> _POSITION_BITS,
        position=claims.link_id & MAX_POSITION,
        issued_at=claims.issued_at,
    )
