"""Tracking tokens: signed, random, bound to one use, rotated like unsubscribe secrets."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from app.tracking.tokens import TokenClaims, TokenUse, make_token, new_nonce, read_token

KEY = "tracking-key-0123456789"
OLD_KEY = "tracking-old-key-0123456789"
ISSUED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
YEAR = timedelta(days=365)
NONCE = bytes(range(16))


def token(
    link_id: int = 42,
    *,
    use: TokenUse = TokenUse.CLICK,
    secrets: list[str] | None = None,
    nonce: bytes = NONCE,
) -> str:
    return make_token(
        use=use, link_id=link_id, nonce=nonce, issued_at=ISSUED, secrets=secrets or [KEY]
    )


def read(
    value: str,
    *,
    use: TokenUse = TokenUse.CLICK,
    secrets: list[str] | None = None,
    now: datetime = ISSUED + timedelta(days=1),
) -> TokenClaims | None:
    return read_token(value, use=use, secrets=secrets or [KEY], now=now, max_age=YEAR)


def raw(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_token_names_the_link_with_its_nonce() -> None:
    value = token()
    assert read(value) == TokenClaims(link_id=42, nonce=NONCE, issued_at=ISSUED)
    assert len(value) == 60
    assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_tokens_carry_128_random_bits_and_no_visible_sequence() -> None:
    first, second = new_nonce(), new_nonce()
    assert len(first) == 16 and first != second
    assert token(nonce=first) != token(nonce=second)
    # Neighbouring ids do not show as neighbouring bytes: the id is masked.
    for link_id in (1, 2, 3):
        assert link_id.to_bytes(8, "big") not in raw(token(link_id))


def test_every_tampered_byte_is_refused() -> None:
    data = raw(token())
    for index in range(len(data)):
        changed = bytearray(data)
        changed[index] ^= 0x01
        assert read(encode(bytes(changed))) is None, index


def test_wrong_secret_is_refused() -> None:
    assert read(token(), secrets=["another-key-0123456789"]) is None
    assert read_token(token(), use=TokenUse.CLICK, secrets=[], now=ISSUED, max_age=YEAR) is None
    with pytest.raises(ValueError, match="secret"):
        make_token(use=TokenUse.CLICK, link_id=1, nonce=NONCE, issued_at=ISSUED, secrets=[])


def test_an_open_token_is_no_click_token() -> None:
    pixel = token(use=TokenUse.OPEN)
    assert read(pixel, use=TokenUse.OPEN) is not None
    assert read(pixel, use=TokenUse.CLICK) is None
    assert read(token(use=TokenUse.CLICK), use=TokenUse.OPEN) is None


def test_rotation() -> None:
    old = token(secrets=[OLD_KEY])
    rotated = [KEY, OLD_KEY]
    assert read(old, secrets=rotated) == TokenClaims(42, NONCE, ISSUED)
    new = token(secrets=rotated)
    assert new == token(secrets=[KEY])
    assert read(new, secrets=rotated) == TokenClaims(42, NONCE, ISSUED)
    assert read(old, secrets=[KEY]) is None  # the old key retired: its links stop


def test_expiry() -> None:
    value = token()
    assert read(value, now=ISSUED + YEAR) is not None
    assert read(value, now=ISSUED + YEAR + timedelta(seconds=1)) is None


@pytest.mark.parametrize(
    "value",
    ["", "a", "!" * 60, "A" * 59, "A" * 61, "A" * 60, token() + "=", token()[:-1] + "+"],
)
def test_garbage_is_refused(value: str) -> None:
    assert read(value) is None


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        token(0)
    with pytest.raises(ValueError):
        token(nonce=b"short")
