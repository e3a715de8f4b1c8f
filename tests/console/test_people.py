"""`/dashboard/people`: find a customer, see what is held about them (as the export holds
it), download the export, and erase them only after typing their address."""

from __future__ import annotations

import re

from httpx import AsyncClient

from app.outbox.dispatcher import Dispatcher
from tests.conftest import Api
from tests.dashboard.conftest import csrf_token, sign_in
from tests.factories import order_created, post_event
from tests.smtp_sink import SmtpSink


async def _order(client: AsyncClient, order_id: str, **customer: str) -> None:
    response = await post_event(client, order_created(order_id=order_id, **customer))
    assert response.status_code == 200, response.text


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr data-customer="(\d+)">', page)


async def _anna(client: AsyncClient) -> str:
    [row] = _rows((await client.get("/dashboard/people", params={"q": "anna@"})).text)
    return f"/dashboard/people/{row}"


async def test_find_a_customer_and_read_their_page(
    client: AsyncClient, api: Api, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    await _order(client, "820982911946150001")
    await _order(client, "820982911946150002")
    await _order(
        client,
        "820982911946150003",
        customer_id="c-2002",
        email="boris@example.org",
        first_name="Борис",
    )
    await dispatcher.run_once()
    assert len(smtp_sink.received) == 3
    await sign_in(client)

    everyone = (await client.get("/dashboard/people")).text
    assert len(_rows(everyone)) == 2
    found = (await client.get("/dashboard/people", params={"q": "ANNA@"})).text
    [anna] = _rows(found)
    assert re.search(rf'<tr data-customer="{anna}">.*?<td>2</td>', found, re.S)  # two orders
    [boris] = _rows((await client.get("/dashboard/people", params={"q": "c-2002"})).text)
    assert boris != anna
    # By name, in any case, Cyrillic too (SQLite's own lower() folds ASCII only).
    for name in ("борис", "БОРИС IVAN", "ivanova"):
        found_by_name = _rows((await client.get("/dashboard/people", params={"q": name})).text)
        assert boris in found_by_name, name
    assert _rows((await client.get("/dashboard/people", params={"q": "борис"})).text) == [boris]
    nobody = await client.get("/dashboard/people", params={"q": "nobody"})
    assert _rows(nobody.text) == [] and "No customer matches" in nobody.text

    page = (await client.get(f"/dashboard/people/{anna}")).text
    export = await client.get(
        "/api/v1/customers/c-1001/export", params={"shop": "default"}, headers=api.headers
    )
    document = export.json()
    for order in document["orders"]:
        assert (order["number"] or order["id"]) in page
    message_ids = re.findall(r'<tr data-message="(\d+)">', page)
    assert sorted(message_ids) == sorted(str(m["id"]) for m in document["messages"])
    assert len(message_ids) == 2 and f'href="/dashboard/messages/{message_ids[0]}"' in page
    assert 'data-field="marketing">subscribed' in page

    download = await client.get(f"/dashboard/people/{anna}/export.json")
    assert download.status_code == 200
    assert download.headers["content-disposition"] == f'attachment; filename="customer-{anna}.json"'
    assert download.headers["cache-control"] == "no-store"
    exported = download.json()
    del exported["exported_at"], document["exported_at"]
    assert exported == document

    assert (await client.get("/dashboard/people/999999")).status_code == 404
    client.cookies.clear()
    assert (await client.get(f"/dashboard/people/{anna}/export.json")).status_code == 303


async def test_erase_asks_for_the_address_first(client: AsyncClient, api: Api) -> None:
    await _order(client, "820982911946150001")
    await sign_in(client)
    anna = await _anna(client)
    token = await csrf_token(client, anna)

    wrong = await client.post(f"{anna}/erase", data={"csrf": token, "confirm": "anna"})
    assert wrong.status_code == 422 and "Nothing was erased" in wrong.text
    forged = await client.post(f"{anna}/erase", data={"confirm": "anna@example.org"})
    assert forged.status_code == 403
    held = await client.get(
        "/api/v1/customers/c-1001/export", params={"shop": "default"}, headers=api.headers
    )
    assert held.json()["customer"]["email"] == "anna@example.org"  # both refused: all kept

    done = await client.post(f"{anna}/erase", data={"csrf": token, "confirm": "Anna@Example.org"})
    assert (done.status_code, done.headers["location"]) == (303, f"{anna}?erased=1")
    page = (await client.get(done.headers["location"])).text
    assert "Erased. 1 waiting message cancelled." in page
    assert 'data-field="erased"' in page and "anna@example.org" not in page
    assert 'action="' + anna + '/erase"' not in page  # nothing left to erase
    after = await client.get(
        "/api/v1/customers/c-1001/export", params={"shop": "default"}, headers=api.headers
    )
    assert after.status_code == 404  # nothing held about them any more
