"""The operator's commands without a browser (issue 19, item 4): `aftersale messages
list|show`, `suppressions list`, `customers export|erase`, and `--json` on each, which prints
what the operator API answers for the same request.

The tracking tests' set-up is reused: a marketing rule `links` whose mail is full of tracked
links, sent through the real SMTP sink and opened and clicked through the app.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient

from app.cli import CANNOT_START, main
from app.config import Settings
from app.customers.command import erase_command
from app.feedback.inbound import InboundListener
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.factories import order_created, post_event
from tests.feedback.samples import arf
from tests.feedback.test_inbound import deliver
from tests.mail.test_preview import cli_env
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import SmtpSink, free_port
from tests.stats.conftest import fold
from tests.stats.test_stats_flow import place_order
from tests.tracking.conftest import client, settings  # noqa: F401
from tests.tracking.test_tracking_flow import ReadMail, fetch

Output = tuple[int, str, str]


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-cli")
    yield worker
    await worker.sender.close()


@pytest.fixture
def aftersale(
    settings: Settings,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Any:
    """`await aftersale("messages", "list")`: (exit code, stdout, stderr) of the command, run
    in its own thread and event loop as from a shell, with the tests' settings."""
    cli_env(monkeypatch, settings)

    async def run(*argv: str) -> Output:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


async def api_json(http: AsyncClient, api: Api, url: str, **params: Any) -> Any:
    response = await http.get(url, params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def send_after_a_retry(
    http: AsyncClient, dispatcher: Dispatcher, smtp_sink: SmtpSink, clock: FrozenClock
) -> ReadMail:
    """Order 6001's mail: refused once (451) by the server, then sent; as the reader sees it."""
    await post_event(http, order_created(order_id="6001", created_at="2026-11-20T10:00:00Z"))
    smtp_sink.rcpt_reply = lambda _address: "451 4.2.1 mailbox busy, try later"
    assert (await dispatcher.run_once()).outcomes == {"retry": 1}
    smtp_sink.rcpt_reply = lambda _address: None
    clock.advance(minutes=5)
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    mail = ReadMail()
    mail.feed(smtp_sink.received[-1].part("text/html"))
    return mail


async def test_messages_list_and_show_tell_a_messages_story_as_the_api_does(
    client: AsyncClient,  # noqa: F811
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    aftersale: Any,
) -> None:
    mail = await send_after_a_retry(client, dispatcher, smtp_sink, clock)
    clock.advance(hours=2)
    [pixel] = [src for src in mail.images if "/o/" in src]
    await fetch(client, pixel)
    visible = [href for href, style in mail.links if "display:none" not in style]
    clicked = await fetch(client, visible[1])
    assert clicked.status_code in (302, 303, 307)
    # A scanner follows the hidden link: a machine.
    [honeypot] = [href for href, style in mail.links if "display:none" in style]
    await fetch(client, honeypot, agent="Barracuda Sentinel (EE)")
    # Anna orders again within the window: the order is credited to the mail's click.
    await place_order(client, order_id="6002", at="2026-11-25T10:00:00Z")
    await post_event(
        client, order_created(order_id="7001", customer_id="c-2", email="bo@example.org")
    )
    await fold(runtime)

    # The list: newest first, as a table with the next page's cursor.
    code, out, err = await aftersale("messages", "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "id", "status", "rule/step", "recipient", "send_at", "sent_at", "reason"
    ]  # fmt: skip
    page = await api_json(client, api, "/api/v1/messages")
    assert [line.split()[0] for line in lines[1:-1]] == [str(i["id"]) for i in page["items"]]
    sent_id = next(item["id"] for item in page["items"] if item["order_id"] == "6001")
    [sent_line] = [line for line in lines if line.startswith(f"{sent_id} ")]
    assert sent_line.split()[1:5] == ["sent", "links/1", "anna@example.org", "2026-11-20T10:00:00Z"]
    assert lines[-1] == "3 message(s)"
    # Columns line up: every row's status starts where the header's does.
    assert {line.index(" sent ") + 1 for line in lines[1:-1] if " sent " in line} == {
        lines[0].index("status")
    }

    # --json is the API's page, for the same filters.
    for filters, params in (
        ([], {}),
        (["--email", "Anna@Example.org"], {"email": "Anna@Example.org"}),
        (["--order-id", "7001"], {"order_id": "7001"}),
        (["--rule", "links", "--status", "scheduled"], {"rule": "links", "status": "scheduled"}),
        (["--rule", "nope"], {"rule": "nope"}),
    ):
        code, out, _ = await aftersale("messages", "list", *filters, "--json")
        assert code == 0
        assert json.loads(out) == await api_json(client, api, "/api/v1/messages", **params)
    code, out, _ = await aftersale("messages", "list", "--email", "anna@example.org")
    assert {line.split()[3] for line in out.splitlines()[1:-1]} == {"anna@example.org"}
    code, out, _ = await aftersale("messages", "list", "--status", "cancelled")
    assert (code, out) == (0, "no messages\n")

    # Paging: a full page names the cursor of the next; the pages are the API's.
    code, out, _ = await aftersale("messages", "list", "--limit", "2")
    first = await api_json(client, api, "/api/v1/messages", limit=2)
    assert out.splitlines()[-1] == f"2 message(s); next page: --cursor {first['next_cursor']}"
    cursor = str(first["next_cursor"])
    code, out, _ = await aftersale("messages", "list", "--limit", "2", "--cursor", cursor, "--json")
    rest = json.loads(out)
    assert rest == await api_json(client, api, "/api/v1/messages", limit=2, cursor=cursor)
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    for bad, problem in (
        (["--status", "lost"], "--status 'lost' is none of scheduled, sending, sent"),
        (["--limit", "0"], "--limit must be 1 to 500"),
        (["--cursor", "0"], "--cursor must be a next_cursor"),
    ):
        code, out, err = await aftersale("messages", "list", *bad)
        assert (code, out) == (2, "") and problem in err, err

    # One message, its timeline in time order.
    code, out, err = await aftersale("messages", "show", str(sent_id))
    assert (code, err) == (0, ""), err
    assert out.startswith(f"message {sent_id}\n")
    text = " ".join(out.split())
    assert "rule links step 1 (version" in text and "template links, marketing" in text
    assert "customer anna@example.org, order 6001" in text
    timeline = out[out.index("timeline (UTC)") :].splitlines()[1:]
    whats = [line.split()[1] for line in timeline]
    assert whats[:5] == ["planned", "attempt", "attempt", "sent", "open"]
    assert whats.count("click") == 2 and whats[-1] == "conversion"
    retry, delivered = (" ".join(line.split()) for line in timeline[1:3])
    assert retry.endswith("attempt 1 retry: 451 4.2.1 mailbox busy, try later"), retry
    assert "attempt 2 sent" in delivered
    clicks = [" ".join(line.split()) for line in timeline if " click " in line]
    assert any("click human (" in line and "https://shop.example/care" in line for line in clicks)
    assert any("click machine (honeypot)" in line for line in clicks), clicks
    assert "conversion order 6002 via click, 49.80 EUR" in " ".join(timeline[-1].split())
    times = [line.split()[0] for line in timeline[1:]]  # planned comes first, whatever its time
    assert times == sorted(times)

    # --json: the API's message, and its history.
    code, out, _ = await aftersale("messages", "show", str(sent_id), "--json")
    detail = json.loads(out)
    [listed] = [item for item in page["items"] if item["id"] == sent_id]
    assert {name: detail[name] for name in listed} == listed
    assert [(a["attempt"], a["outcome"], a["smtp_code"]) for a in detail["attempt_log"]] == [
        (1, "retry", 451),
        (2, "sent", 250),
    ]
    assert ("open", "human") in {(e["kind"], e["class"]) for e in detail["engagement"]}
    assert [(c["order_id"], c["via"], c["revenue"]) for c in detail["conversions"]] == [
        ("6002", "click", "49.80")
    ]
    assert detail["recipient"] == "anna@example.org" and detail["feedback"] == []

    for missing in ("999999", "0"):
        code, out, err = await aftersale("messages", "show", missing)
        assert (code, out, err) == (1, "", f"aftersale messages show: no message {missing}\n")


async def test_messages_show_lists_a_complaint_about_the_message(
    client: AsyncClient,  # noqa: F811
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    aftersale: Any,
) -> None:
    await post_event(client, order_created(order_id="6101"))
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    listener = InboundListener(runtime, host="127.0.0.1", port=free_port())
    await listener.start()
    try:
        # The mailbox provider's feedback loop returns the mail as a spam complaint.
        await deliver(listener.port, arf(smtp_sink.received[-1].raw), to="fbl@example.net")
    finally:
        await listener.stop()
    [row] = (await api_json(client, api, "/api/v1/messages", order_id="6101"))["items"]
    code, out, _ = await aftersale("messages", "show", str(row["id"]))
    timeline = out[out.index("timeline (UTC)") :].splitlines()
    assert code == 0 and " ".join(timeline[-1].split()[1:]).startswith(
        "complaint via mail: ARF abuse"
    )
    code, out, _ = await aftersale("messages", "show", str(row["id"]), "--json")
    assert [(f["kind"], f["provider"]) for f in json.loads(out)["feedback"]] == [
        ("complaint", "mail")
    ]


async def test_cancel_and_fail_print_the_apis_message_with_json(
    client: AsyncClient,  # noqa: F811
    api: Api,
    aftersale: Any,
) -> None:
    await post_event(client, order_created(order_id="8001"))
    [row] = (await api_json(client, api, "/api/v1/messages"))["items"]
    code, out, err = await aftersale("messages", "cancel", str(row["id"]), "--json")
    assert (code, err) == (0, "")
    cancelled = json.loads(out)
    assert (cancelled["status"], cancelled["reason"]) == ("cancelled", "cancelled_by_operator")
    again = await client.post(f"/api/v1/messages/{row['id']}/cancel", headers=api.headers)
    assert again.json() == cancelled
    # Text and exit codes as before --json existed.
    code, out, _ = await aftersale("messages", "cancel", str(row["id"]))
    assert (code, out) == (0, f"message {row['id']}: cancelled (cancelled_by_operator)\n")
    code, out, err = await aftersale("messages", "fail", str(row["id"]), "--json")
    assert (code, out) == (1, "") and "message is cancelled" in err


async def test_suppressions_list_pages_and_filters_as_the_api_does(
    client: AsyncClient,  # noqa: F811
    api: Api,
    aftersale: Any,
) -> None:
    entries = [
        ("anna@example.org", "manual", "asked by phone"),
        ("boris@example.org", "hard_bounce", "550 5.1.1\n  no such user"),
        ("chen@example.org", "complaint", None),
    ]
    for email, reason, detail in entries:
        body = {"email": email, "reason": reason, "detail": detail}
        added = await client.post("/api/v1/suppressions", json=body, headers=api.headers)
        assert added.status_code == 201, added.text
    code, out, err = await aftersale("suppressions", "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["id", "email", "reason", "created_at", "detail"]
    assert [line.split()[1:3] for line in lines[1:-1]] == [
        ["chen@example.org", "complaint"],
        ["boris@example.org", "hard_bounce"],
        ["anna@example.org", "manual"],
    ]
    # A multi-line detail stays on its row.
    assert lines[2].endswith("550 5.1.1 no such user") and lines[-1] == "3 suppression(s)"

    for filters, params in (
        ([], {}),
        (["--reason", "hard_bounce"], {"reason": "hard_bounce"}),
        (["--email", "Anna@Example.org"], {"email": "Anna@Example.org"}),
        (["--limit", "2"], {"limit": 2}),
    ):
        code, out, _ = await aftersale("suppressions", "list", *filters, "--json")
        assert code == 0
        assert json.loads(out) == await api_json(client, api, "/api/v1/suppressions", **params)
    code, out, _ = await aftersale("suppressions", "list", "--limit", "2")
    cursor = (await api_json(client, api, "/api/v1/suppressions", limit=2))["next_cursor"]
    assert out.splitlines()[-1] == f"2 suppression(s); next page: --cursor {cursor}"
    code, out, _ = await aftersale("suppressions", "list", "--limit", "2", "--cursor", str(cursor))
    assert [line.split()[1] for line in out.splitlines()[1:-1]] == ["anna@example.org"]
    code, out, err = await aftersale("suppressions", "list", "--reason", "bounced")
    assert (code, out) == (2, "") and "--reason 'bounced' is none of" in err
    code, out, _ = await aftersale("suppressions", "list", "--email", "dora@example.org")
    assert (code, out) == (0, "no suppressions\n")

    # `remove --json`: the API's removal report; the text and exit codes are unchanged.
    code, out, _ = await aftersale(
        "suppressions", "remove", "anna@example.org", "--dry-run", "--json"
    )
    assert (code, json.loads(out)) == (
        0,
        {"dry_run": True, "removed": 1, "by_reason": {"manual": 1}},
    )
    code, out, _ = await aftersale("suppressions", "remove", "--reason", "complaint", "--json")
    api_report = await client.post(
        "/api/v1/suppressions/remove", json={"reason": "hard_bounce"}, headers=api.headers
    )
    assert json.loads(out) == {"dry_run": False, "removed": 1, "by_reason": {"complaint": 1}}
    assert api_report.json() == {"dry_run": False, "removed": 1, "by_reason": {"hard_bounce": 1}}
    code, out, err = await aftersale("suppressions", "remove", "nobody@example.org", "--json")
    assert code == 1 and json.loads(out)["removed"] == 0 and "not on the list" in err


def without_time(document: dict[str, Any]) -> dict[str, Any]:
    """The export without `exported_at`: the command runs on the wall clock, the API on the
    tests' clock."""
    return {name: value for name, value in document.items() if name != "exported_at"}


async def test_customers_export_prints_a_summary_or_the_apis_document(
    client: AsyncClient,  # noqa: F811
    api: Api,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    aftersale: Any,
) -> None:
    await post_event(client, order_created(order_id="9001", customer_id="c-77"))
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    await post_event(client, order_created(order_id="9002", customer_id="c-77"))
    await client.post(
        "/api/v1/suppressions", json={"email": "anna@example.org"}, headers=api.headers
    )

    code, out, err = await aftersale("customers", "export", "--email", " Anna@Example.ORG ")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("exported at 20")
    assert lines[1].split() == [
        "shop", "customer", "email", "orders", "messages", "opens/clicks", "erased"
    ]  # fmt: skip
    assert lines[2].split() == ["default", "c-77", "anna@example.org", "2", "2", "0", "-"]
    assert lines[3:] == [
        "1 suppression(s) of the address",
        "0 bounce/complaint report(s) of the address",
        "the full document: the same command with --json",
    ]
    code, out, _ = await aftersale("customers", "export", "--email", "anna@example.org", "--json")
    by_address = await api_json(client, api, "/api/v1/customers/export", email="anna@example.org")
    assert without_time(json.loads(out)) == without_time(by_address)
    code, out, _ = await aftersale("customers", "export", "c-77", "--shop", "default", "--json")
    by_id = await api_json(client, api, "/api/v1/customers/c-77/export")
    assert without_time(json.loads(out)) == without_time(by_id)
    code, out, _ = await aftersale("customers", "export", "c-77")
    assert out.splitlines()[1:3] and out.splitlines()[2].split()[:2] == ["default", "c-77"]

    for args, message in (
        (["--email", "boris@example.org"], "nothing held about this address"),
        (["c-77", "--shop", "tea-house"], "no customer c-77 in shop tea-house"),
        (["nobody"], "no customer nobody in shop default"),
    ):
        code, out, err = await aftersale("customers", "export", *args)
        assert (code, out) == (1, "") and message in err, err
    for args in (["--email", "anna(at)example.org"], [], ["c-77", "--email", "a@example.org"]):
        code, out, err = await aftersale("customers", "export", *args)
        assert (code, out) == (2, "") and err.startswith("aftersale customers export: "), err


async def message_of(
    http: AsyncClient, api: Api, order_id: str
) -> tuple[str, str | None, str | None]:
    [item] = (await api_json(http, api, "/api/v1/messages", order_id=order_id))["items"]
    return item["status"], item["reason"], item["email"]


class Terminal(io.StringIO):
    """What the operator types, on a terminal."""

    def isatty(self) -> bool:
        return True


async def test_customers_erase_confirms_then_erases_as_the_api_does(
    client: AsyncClient,  # noqa: F811
    api: Api,
    runtime: Runtime,
    aftersale: Any,
) -> None:
    for number in ("1", "2", "3"):
        await post_event(
            client,
            order_created(
                order_id=f"50{number}", customer_id=f"c-{number}", email=f"p{number}@example.org"
            ),
        )
    # No terminal to ask on and no --yes: refused, nothing erased.
    code, out, err = await aftersale("customers", "erase", "c-1")
    assert (code, out) == (2, "")
    assert "not confirmed: stdin is not a terminal; give --yes" in err
    export = await api_json(client, api, "/api/v1/customers/c-1/export")
    assert export["customer"]["erased_at"] is None

    # On a terminal, the id typed back is the confirmation; anything else is not.
    async def erase_typing(typed: str) -> Output:
        stdout, stderr = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(
            erase_command,
            settings=runtime.settings,
            customer_id="c-1",
            shop=None,
            yes=False,
            as_json=False,
            stdin=Terminal(typed),
            stdout=stdout,
            stderr=stderr,
        )
        return code, stdout.getvalue(), stderr.getvalue()

    code, out, err = await erase_typing("c-2\n")
    assert (code, out) == (1, "") and "Type the customer id to confirm:" in err
    assert "not confirmed; nothing erased" in err
    assert await message_of(client, api, "501") == ("scheduled", None, "p1@example.org")
    code, out, err = await erase_typing("c-1\n")
    assert (code, out) == (0, "customer c-1 of shop default: erased, 1 message(s) cancelled\n")
    assert await message_of(client, api, "501") == ("cancelled", "customer_deleted", None)
    gone = await client.get("/api/v1/customers/c-1/export", headers=api.headers)
    assert gone.status_code == 404

    # --yes --json: what DELETE /api/v1/customers/ID answers.
    code, out, err = await aftersale("customers", "erase", "c-2", "--yes", "--json")
    assert (code, err) == (0, "")
    by_api = await client.delete("/api/v1/customers/c-3", headers=api.headers)
    assert json.loads(out) == by_api.json() == {"erased": True, "messages_cancelled": 1}
    code, out, err = await aftersale("customers", "erase", "c-9", "--shop", "tea-house", "--yes")
    assert (code, out) == (1, "")
    assert err == "aftersale customers erase: no customer c-9 in shop tea-house\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["messages", "list"],
        ["messages", "show", "1"],
        ["suppressions", "list"],
        ["customers", "export", "--email", "a@example.org"],
        ["customers", "erase", "c-1", "--yes"],
    ],
)
def test_a_settings_error_stops_every_command_as_the_others(
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("AFTERSALE_LOG_LEVEL", "LOUD")
    assert main(argv) == CANNOT_START
    captured = capsys.readouterr()
    assert (
        captured.out == ""
        and "aftersale: configuration error: AFTERSALE_LOG_LEVEL: " in captured.err
    )
