"""The login cookie, directly: what it carries, and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.dashboard import session

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SECRET = "session-secret-0123456789"
KEY = "api-key-0123456789"


def test_a_cookie_names_its_key_by_digest_until_it_expires() -> None:
    cookie = session.issue(KEY, secret=SECRET, now=NOW)
    assert KEY not in cookie
    digest = session.read(cookie, secret=SECRET, now=NOW + timedelta(hours=11, minutes=59))
    assert digest == session.key_digest(KEY, secret=SECRET)
    assert session.key_of(digest, keys=["other-key-0123456789", KEY], secret=SECRET) == KEY
    assert session.read(cookie, secret=SECRET, now=NOW + session.LIFETIME) is None


def test_a_cookie_is_good_only_unaltered_and_under_its_secret() -> None:
    cookie = session.issue(KEY, secret=SECRET, now=NOW)
    version, expires, digest, signature = cookie.split(".")
    other = session.issue("other-key-0123456789", secret=SECRET, now=NOW)
    refused = [
        f"{version}.{int(expires) + 3600}.{digest}.{signature}",
        f"{version}.{expires}.{other.split('.')[2]}.{signature}",
        f"{version}.{expires}.{digest}.{other.split('.')[3]}",
        f"v0.{expires}.{digest}.{signature}",
        f"{version}.-1.{digest}.{signature}",
        f"{version}.{'9' * 40}.{digest}.{signature}",
        f"{version}.²³.{digest}.{signature}",  # digits, but not ASCII ones
        f"{version}.{expires}..{signature}",
        "",
        None,
        "....",
        "ä.ö.ü",
    ]
    for value in refused:
        assert session.read(value, secret=SECRET, now=NOW) is None, value
    assert session.read(cookie, secret="another-secret-0123456789", now=NOW) is None


def test_a_removed_key_is_found_no_more() -> None:
    digest = session.key_digest(KEY, secret=SECRET)
    assert session.key_of(digest, keys=["other-key-0123456789"], secret=SECRET) is None
    assert session.key_of(digest, keys=[], secret=SECRET) is None
    # The digest is keyed: the same key under another secret is another digest.
    assert session.key_digest(KEY, secret="another-secret-0123456789") != digest
