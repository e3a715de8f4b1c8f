"""Signing in to the dashboard through the app: the cookie, its flags, and its end."""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie

import pytest
from httpx import AsyncClient

from app.dashboard import session
from app.runtime import Runtime
from tests.conftest import TEST_API_KEY, FrozenClock
from tests.dashboard.conftest import csrf_token, sign_in


def _set_cookie(headers: list[str]) -> SimpleCookie:
    [header] = [value for value in headers if value.startswith(f"{session.COOKIE_NAME}=")]
    cookie = SimpleCookie()
    cookie.load(header)
    return cookie


async def test_without_a_session_the_page_sends_to_the_login_form(client: AsyncClient) -> None:
    response = await client.get("/dashboard", params={"from": "2026-11-01"})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login"
    form = await client.get("/dashboard/login")
    assert form.status_code == 200
    assert '<form method="post" action="/dashboard/login">' in form.text
    assert 'type="password"' in form.text
    assert "script-src 'none'" in form.headers["content-security-policy"]
    assert form.headers["x-frame-options"] == "DENY"
    assert form.headers["cache-control"] == "no-store"


async def test_a_good_key_sets_a_signed_http_only_strict_cookie(
    client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await client.post("/dashboard/login", data={"api_key": TEST_API_KEY})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = _set_cookie(response.headers.get_list("set-cookie"))[session.COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "strict"
    assert cookie["path"] == "/dashboard"
    assert cookie["max-age"] == str(12 * 3600)
    assert not cookie["secure"]  # public_url is http in tests: a Secure cookie would be lost
    assert TEST_API_KEY not in cookie.value
    # Signed in: the page answers, and the form sends on to it.
    assert (await client.get("/dashboard")).status_code == 200
    again = await client.get("/dashboard/login")
    assert (again.status_code, again.headers["location"]) == (303, "/dashboard")
    # The key went in the body of one POST: no log line, no URL holds it.
    assert all(TEST_API_KEY not in record.getMessage() for record in caplog.records)
    assert all(TEST_API_KEY not in str(vars(record)) for record in caplog.records)


async def test_the_cookie_is_secure_when_the_service_is_served_over_https(
    client: AsyncClient, runtime: Runtime
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"public_url": "https://shop.example"})
    response = await client.post("/dashboard/login", data={"api_key": TEST_API_KEY})
    cookie = _set_cookie(response.headers.get_list("set-cookie"))[session.COOKIE_NAME]
    assert cookie["secure"] is True


@pytest.mark.parametrize("key", ["wrong-key-0123456789", "", TEST_API_KEY + " ", TEST_API_KEY[:-1]])
async def test_a_wrong_key_shows_the_form_again_with_401(client: AsyncClient, key: str) -> None:
    response = await client.post("/dashboard/login", data={"api_key": key})
    assert response.status_code == 401
    assert "That is not a valid API key." in response.text
    assert 'role="alert"' in response.text
    assert "set-cookie" not in response.headers
    assert (await client.get("/dashboard")).status_code == 303


async def test_a_revoked_key_is_refused(client: AsyncClient, runtime: Runtime) -> None:
    # Revoked wins even while the key is still in API_KEYS, as on the API.
    runtime.settings = runtime.settings.model_copy(update={"revoked_api_keys": [TEST_API_KEY]})
    response = await client.post("/dashboard/login", data={"api_key": TEST_API_KEY})
    assert response.status_code == 403
    assert "This API key has been revoked." in response.text
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "change", [{"revoked_api_keys": [TEST_API_KEY]}, {"api_keys": ["another-key-0123456789"]}]
)
async def test_revoking_or_removing_the_key_ends_its_session(
    client: AsyncClient, runtime: Runtime, change: dict[str, list[str]]
) -> None:
    await sign_in(client)
    assert (await client.get("/dashboard")).status_code == 200
    runtime.settings = runtime.settings.model_copy(update=change)
    response = await client.get("/dashboard")
    assert (response.status_code, response.headers["location"]) == (303, "/dashboard/login")


async def test_a_new_session_secret_ends_every_session(
    client: AsyncClient, runtime: Runtime
) -> None:
    await sign_in(client)
    runtime.settings = runtime.settings.model_copy(
        update={"session_secret": "another-session-secret-0123"}
    )
    assert (await client.get("/dashboard")).status_code == 303


async def test_a_tampered_cookie_sends_back_to_login(client: AsyncClient) -> None:
    await sign_in(client)
    value = client.cookies[session.COOKIE_NAME]
    version, expires, digest, signature = value.split(".")
    forged = [
        f"{version}.{int(expires) + 86400}.{digest}.{signature}",  # a later expiry
        f"{version}.{expires}.{digest[:-2]}AA.{signature}",  # another key
        f"{version}.{expires}.{digest}.{signature[:-2]}AA",
        f"v2.{expires}.{digest}.{signature}",
        "garbage",
        "",
    ]
    for cookie in forged:
        client.cookies.clear()
        client.cookies.set(session.COOKIE_NAME, cookie, path="/dashboard")
        response = await client.get("/dashboard")
        assert response.status_code == 303, cookie


async def test_the_session_expires_after_12_hours(client: AsyncClient, clock: FrozenClock) -> None:
    await sign_in(client)
    clock.advance(hours=11, minutes=59)
    assert (await client.get("/dashboard")).status_code == 200
    clock.advance(minutes=1)
    response = await client.get("/dashboard")
    assert (response.status_code, response.headers["location"]) == (303, "/dashboard/login")


async def test_logout_clears_the_cookie(client: AsyncClient) -> None:
    await sign_in(client)
    token = await csrf_token(client)
    response = await client.post("/dashboard/logout", data={"csrf": token})
    assert (response.status_code, response.headers["location"]) == (303, "/dashboard/login")
    cookie = _set_cookie(response.headers.get_list("set-cookie"))[session.COOKIE_NAME]
    assert cookie.value == "" and cookie["max-age"] == "0" and cookie["path"] == "/dashboard"
    assert session.COOKIE_NAME not in client.cookies
    assert (await client.get("/dashboard")).status_code == 303


async def test_logout_without_the_pages_token_is_refused(
    client: AsyncClient, clock: FrozenClock
) -> None:
    """Another site's form (or an old page's) signs no one out: a 403 page, cookie kept."""
    await sign_in(client)
    token = await csrf_token(client)
    for data in ({}, {"csrf": ""}, {"csrf": token[:-1] + ("A" if token[-1] != "A" else "B")}):
        response = await client.post("/dashboard/logout", data=data)
        assert response.status_code == 403, data
        assert "set-cookie" not in response.headers
        assert "Nothing was changed" in response.text
    assert (await client.get("/dashboard")).status_code == 200
    # A token of an earlier sign-in is no good for the next one (a new cookie, a new token).
    clock.advance(minutes=5)
    await sign_in(client)
    assert (await client.post("/dashboard/logout", data={"csrf": token})).status_code == 403
    response = await client.post("/dashboard/logout", data={"csrf": await csrf_token(client)})
    assert response.status_code == 303


async def test_login_attempts_are_rate_limited_per_client(client: AsyncClient) -> None:
    for _ in range(5):
        response = await client.post("/dashboard/login", data={"api_key": "guess-0123456789"})
        assert response.status_code == 401
    # Over the burst: refused before the key is even looked at, the right one too.
    response = await client.post("/dashboard/login", data={"api_key": TEST_API_KEY})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert "Too many attempts" in response.text
    assert "set-cookie" not in response.headers


async def test_an_oversized_form_is_refused(client: AsyncClient) -> None:
    response = await client.post("/dashboard/login", data={"api_key": "k" * 5000})
    assert response.status_code == 413
    assert "set-cookie" not in response.headers
