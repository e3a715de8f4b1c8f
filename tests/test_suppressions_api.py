"""The suppression list API: bearer key, lower-cased addresses, idempotent add, paging."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.models import Suppression
from app.runtime import Runtime
from tests.conftest import Api

URL = "/api/v1/suppressions"


async def stored(runtime: Runtime) -> list[tuple[str, str]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Suppression.email, Suppression.reason).order_by(Suppression.id)
        )
        return [(row[0], row[1]) for row in rows]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", URL, None),
        ("POST", URL, {"email": "a@example.org"}),
        ("DELETE", f"{URL}/a@example.org", None),
    ],
)
async def test_needs_an_api_key(
    client: AsyncClient, runtime: Runtime, method: str, path: str, body: dict[str, Any] | None
) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-key"}):
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert await stored(runtime) == []


async def test_add_is_idempotent_and_lower_cases(
    client: AsyncClient, runtime: Runtime, api: Api
) -> None:
    created = await client.post(URL, json={"email": "Anna@Example.ORG"}, headers=api.headers)
    assert created.status_code == 201
    body = created.json()
    assert (body["email"], body["reason"], body["detail"]) == ("anna@example.org", "manual", None)
    assert body["created_at"].endswith(("Z", "+00:00"))
    again = await client.post(
        URL,
        json={"email": "anna@example.org", "reason": "complaint", "detail": "called us"},
        headers=api.headers,
    )
    # Already there: 200 with the entry as it was (the first reason stays).
    assert again.status_code == 200
    assert again.json() == body
    assert await stored(runtime) == [("anna@example.org", "manual")]


@pytest.mark.parametrize("reason", ["unsubscribe", "hard_bounce", "complaint", "manual"])
async def test_every_reason(client: AsyncClient, api: Api, reason: str) -> None:
    response = await client.post(
        URL, json={"email": "a@example.org", "reason": reason, "detail": "x"}, headers=api.headers
    )
    assert response.status_code == 201
    assert (response.json()["reason"], response.json()["detail"]) == (reason, "x")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "email"]),
        ({"email": "not-an-address"}, ["body", "email"]),
        ({"email": "a@example.org", "reason": "bored"}, ["body", "reason"]),
        ({"email": "a@example.org", "detail": "x" * 2001}, ["body", "detail"]),
        ({"email": "a@example.org", "reasons": "manual"}, ["body", "reasons"]),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    client: AsyncClient, runtime: Runtime, api: Api, body: dict[str, Any], loc: list[str]
) -> None:
    response = await client.post(URL, json=body, headers=api.headers)
    assert response.status_code == 422
    assert loc in [error["loc"] for error in response.json()["detail"]]
    assert await stored(runtime) == []


async def test_list_filters_and_pages(client: AsyncClient, api: Api) -> None:
    for index, reason in enumerate(["manual", "complaint", "manual", "hard_bounce", "manual"]):
        response = await client.post(
            URL, json={"email": f"user{index}@example.org", "reason": reason}, headers=api.headers
        )
        assert response.status_code == 201
    everything = await client.get(URL, headers=api.headers)
    assert [row["email"] for row in everything.json()["items"]] == [
        f"user{index}@example.org" for index in (4, 3, 2, 1, 0)
    ]
    assert everything.json()["next_cursor"] is None

    manual = await client.get(URL, params={"reason": "manual", "limit": 2}, headers=api.headers)
    page = manual.json()
    assert [row["email"] for row in page["items"]] == ["user4@example.org", "user2@example.org"]
    rest = await client.get(
        URL,
        params={"reason": "manual", "limit": 2, "cursor": page["next_cursor"]},
        headers=api.headers,
    )
    assert [row["email"] for row in rest.json()["items"]] == ["user0@example.org"]
    assert rest.json()["next_cursor"] is None

    one = await client.get(URL, params={"email": "USER3@example.org"}, headers=api.headers)
    assert [(row["email"], row["reason"]) for row in one.json()["items"]] == [
        ("user3@example.org", "hard_bounce")
    ]
    bad = await client.get(URL, params={"reason": "bored", "limit": 0}, headers=api.headers)
    assert bad.status_code == 422
    assert {tuple(error["loc"]) for error in bad.json()["detail"]} == {
        ("query", "reason"),
        ("query", "limit"),
    }


async def test_delete(client: AsyncClient, runtime: Runtime, api: Api) -> None:
    await client.post(URL, json={"email": "anna@example.org"}, headers=api.headers)
    await client.post(URL, json={"email": "boris@example.org"}, headers=api.headers)
    response = await client.delete(f"{URL}/Anna@Example.org", headers=api.headers)
    assert response.status_code == 204 and response.content == b""
    assert await stored(runtime) == [("boris@example.org", "manual")]
    missing = await client.delete(f"{URL}/anna@example.org", headers=api.headers)
    assert missing.status_code == 404
