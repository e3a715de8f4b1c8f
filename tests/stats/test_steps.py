"""The stats of each step of a sequence: the shipped two-step diapers restock sent through
the SMTP sink (reminder, then the nudge to whoever did not open it), read through
`GET /api/v1/stats/steps` and its CSV, and the same figures added up in `/rules`."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

from httpx import AsyncClient

from app.config import ROOT
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.dashboard.conftest import read_page, sign_in
from tests.outbox.conftest import use_rules
from tests.outbox.test_sequences import BROWSER, REMINDER_AT, START, Service, bodies, pixel
from tests.simulate.test_parity import UNTIL
from tests.smtp_sink import SmtpSink
from tests.stats.conftest import fold, rules_stats

SPAN = {"from": "2026-11-01", "to": "2027-03-31"}
RULE = "diapers-restock"


async def _run_the_restock(
    client: AsyncClient, runtime: Runtime, clock: FrozenClock, smtp_sink: SmtpSink, tmp: Path
) -> None:
    rules_dir = tmp / "sequence-rules"
    rules_dir.mkdir()
    use_rules(runtime, rules_dir, (ROOT / "rules" / "diapers-restock.yaml").read_text())
    clock.current = START
    service = Service(client, runtime, clock)
    try:
        for body in bodies()[:4]:
            await service.post(body)
        await service.run_until(REMINDER_AT)
        # Boris opens the reminder in his browser: his nudge is skipped (if_not_opened).
        clock.current = REMINDER_AT + timedelta(hours=1)
        [boris] = [m for m in smtp_sink.received if m.recipients == ["boris@example.org"]]
        opened = await client.get(pixel(boris.part("text/html")), headers={"User-Agent": BROWSER})
        assert opened.status_code == 200
        for body in bodies()[4:]:
            await service.post(body)
        await service.run_until(UNTIL)
    finally:
        await service.dispatcher.sender.close()
    await fold(runtime)


async def test_each_step_has_its_own_row_and_they_add_up_to_the_rule(
    client: AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    smtp_sink: SmtpSink,
    api: Api,
    tmp_path: Path,
) -> None:
    await _run_the_restock(client, runtime, clock, smtp_sink, tmp_path)
    subjects = [str(mail.message["Subject"]) for mail in smtp_sink.received]
    assert sum(s.startswith("Time to restock") for s in subjects) == 5  # step 1
    assert sum(s.startswith("Still running low") for s in subjects) == 3  # step 2

    response = await client.get("/api/v1/stats/steps", params=SPAN, headers=api.headers)
    assert response.status_code == 200, response.text
    rows = {(row["rule"], row["step"]): row for row in response.json()["rows"]}
    assert sorted(rows) == [(RULE, 1), (RULE, 2)]
    first, second = rows[RULE, 1], rows[RULE, 2]
    assert (first["template"], second["template"]) == (RULE, "diapers-restock-nudge")
    assert (first["variant"], second["variant"]) == (None, None)
    # Five reminders sent (four orders, and Dora's second), one opened by a person.
    assert (first["planned"], first["sent"], first["opened"], first["skipped"]) == (5, 5, 1, 0)
    assert first["open_rate"] == 0.2
    # The nudges: Anna's, Carla's and Dora's second order's went; Boris opened the reminder
    # and Dora bought again, so theirs were skipped.
    assert (second["planned"], second["sent"], second["skipped"]) == (5, 3, 2)
    assert second["opened"] == 0

    # The rule's own row is the sum of its steps.
    rule = (await rules_stats(client, api, **SPAN))[(RULE, None)]
    for name in ("planned", "sent", "skipped", "opened", "clicked", "converted"):
        assert rule[name] == first[name] + second[name], name
    assert rule["template"] == f"{RULE},diapers-restock-nudge"

    exported = await client.get(
        "/api/v1/stats/steps", params={**SPAN, "format": "csv"}, headers=api.headers
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert list(table[0])[:5] == ["rule", "variant", "step", "template", "planned"]
    assert [(r["rule"], r["step"], r["sent"], r["skipped"]) for r in table] == [
        (RULE, "1", "5", "0"),
        (RULE, "2", "3", "2"),
    ]

    # The dashboard shows the rule's row, and a row per step under it.
    await sign_in(client)
    page = await client.get("/dashboard", params=SPAN)
    assert page.status_code == 200, page.text
    assert read_page(page.text).cells[(RULE, "")]["sent"] == "8"
    shown = re.findall(
        rf'<tr class="step" data-step-of="{RULE}" data-variant="" data-step="(\d)">\s*'
        r'<td class="key">step \d</td><td class="key">([^<]*)</td>\s*'
        r'<td data-field="sent">(\d+)</td>',
        page.text,
    )
    assert shown == [("1", RULE, "5"), ("2", "diapers-restock-nudge · 2 skipped", "3")]


async def test_no_messages_no_rows_and_the_span_and_key_are_checked(
    client: AsyncClient, api: Api
) -> None:
    response = await client.get("/api/v1/stats/steps", params=SPAN, headers=api.headers)
    assert response.status_code == 200
    assert response.json()["rows"] == []
    exported = await client.get(
        "/api/v1/stats/steps", params={**SPAN, "format": "csv"}, headers=api.headers
    )
    assert exported.text.splitlines()[0].startswith("rule,variant,step,template,planned,")
    bad = await client.get(
        "/api/v1/stats/steps",
        params={"from": "2026-12-02", "to": "2026-12-01"},
        headers=api.headers,
    )
    assert bad.status_code == 422
    assert (await client.get("/api/v1/stats/steps", params=SPAN)).status_code == 401
