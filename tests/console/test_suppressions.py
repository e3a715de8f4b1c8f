"""`/dashboard/suppressions`: search, take one off, undo many after a count; CSRF-checked."""

from __future__ import annotations

import re

from httpx import AsyncClient

from tests.conftest import Api, FrozenClock
from tests.dashboard.conftest import csrf_token, sign_in

PAGE = "/dashboard/suppressions"


async def _suppress(client: AsyncClient, api: Api, email: str, reason: str) -> None:
    response = await client.post(
        "/api/v1/suppressions", json={"email": email, "reason": reason}, headers=api.headers
    )
    assert response.status_code == 201, response.text


def _listed(page: str) -> list[str]:
    return re.findall(r'<tr data-email="([^"]+)">', page)


async def _on_list(client: AsyncClient, api: Api) -> list[str]:
    response = await client.get("/api/v1/suppressions", headers=api.headers)
    return sorted(item["email"] for item in response.json()["items"])


async def test_search_and_take_one_off(client: AsyncClient, api: Api) -> None:
    await _suppress(client, api, "anna@example.org", "hard_bounce")
    await _suppress(client, api, "boris_b@shop.example", "complaint")
    await _suppress(client, api, "borisXb@shop.example", "manual")
    await sign_in(client)

    page = (await client.get(PAGE)).text
    assert _listed(page) == ["borisxb@shop.example", "boris_b@shop.example", "anna@example.org"]
    # Part of the address; `_` is a character here, not a wildcard.
    assert _listed((await client.get(PAGE, params={"q": "S_B"})).text) == ["boris_b@shop.example"]
    assert _listed((await client.get(PAGE, params={"reason": "hard_bounce"})).text) == [
        "anna@example.org"
    ]
    bad = await client.get(PAGE, params={"reason": "typo"})
    assert bad.status_code == 422 and "No reason" in bad.text

    token = await csrf_token(client, PAGE)
    form = {"csrf": token, "email": "anna@example.org", "note": "mailbox fixed"}
    response = await client.post(f"{PAGE}/remove", data=form)
    assert (response.status_code, response.headers["location"]) == (303, f"{PAGE}?removed=1")
    assert await _on_list(client, api) == ["boris_b@shop.example", "borisxb@shop.example"]
    removals = (await client.get("/api/v1/suppressions/removals", headers=api.headers)).json()
    [removal] = removals["items"]
    assert (removal["source"], removal["note"], removal["reason"]) == (
        "console",
        "mailbox fixed",
        "hard_bounce",
    )
    page = (await client.get(response.headers["location"])).text
    assert "1 address taken off the list." in page and "mailbox fixed" in page
    # Not on the list (any more): nothing to do, and the page says so.
    again = await client.post(f"{PAGE}/remove", data=form)
    assert again.headers["location"] == f"{PAGE}?removed=0"


async def test_a_form_without_the_token_changes_nothing(client: AsyncClient, api: Api) -> None:
    await _suppress(client, api, "anna@example.org", "hard_bounce")
    await sign_in(client)
    for path, data in (
        ("remove", {"email": "anna@example.org"}),
        ("bulk", {"reason": "hard_bounce", "confirm": "yes"}),
        ("remove", {"email": "anna@example.org", "csrf": "forged"}),
    ):
        response = await client.post(f"{PAGE}/{path}", data=data)
        assert response.status_code == 403, path
    assert await _on_list(client, api) == ["anna@example.org"]
    client.cookies.clear()
    response = await client.post(f"{PAGE}/remove", data={"email": "anna@example.org"})
    assert response.status_code == 403
    assert (await client.get(PAGE)).status_code == 303  # signed out: to the sign-in form


async def test_undo_many_counts_first_then_takes_off(
    client: AsyncClient, api: Api, clock: FrozenClock
) -> None:
    # A wrong SMTP password bounced three addresses on Nov 20; a real bounce came on Nov 22.
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        await _suppress(client, api, email, "hard_bounce")
    await _suppress(client, api, "d@example.org", "complaint")
    clock.advance(days=2)
    await _suppress(client, api, "e@example.org", "hard_bounce")
    await sign_in(client)
    token = await csrf_token(client, PAGE)
    form = {
        "csrf": token,
        "reason": "hard_bounce",
        "since": "2026-11-20",
        "until": "2026-11-20",
        "note": "wrong SMTP password",
    }
    preview = await client.post(f"{PAGE}/bulk", data=form)
    assert preview.status_code == 200
    assert "Would take off 3 addresses" in preview.text
    assert 'data-reason="hard_bounce"><code>hard_bounce</code> 3<' in preview.text
    assert len(await _on_list(client, api)) == 5  # a count changes nothing

    done = await client.post(f"{PAGE}/bulk", data=form | {"confirm": "yes"})
    assert (done.status_code, done.headers["location"]) == (303, f"{PAGE}?removed=3")
    assert await _on_list(client, api) == ["d@example.org", "e@example.org"]

    for bad, message in (
        ({"reason": ""}, "Choose the reason"),
        ({"since": "20.11.2026"}, "is not a date"),
        ({"since": "2026-11-21", "until": "2026-11-20"}, "is before"),
    ):
        response = await client.post(f"{PAGE}/bulk", data=form | bad | {"confirm": "yes"})
        assert response.status_code == 422 and message in response.text, bad
    assert len(await _on_list(client, api)) == 2
