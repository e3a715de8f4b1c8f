from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.config import Settings
from app.mail.unsubscribe import SAMPLE_CUSTOMER_ID, CustomerToken, read_token
from tests.mail.test_preview import add_rule, cli_env, order_file
from tests.smtp_sink import SmtpSink, free_port


def test_send_test_reaches_the_server_marked_as_test(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    smtp_sink: SmtpSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_env(monkeypatch, settings)
    assert main(["send-test", "thank-you", "--to", "qa@example.net"]) == 0
    [mail] = smtp_sink.received
    assert mail.envelope_from == "shop@example.com"
    assert mail.recipients == ["qa@example.net"]
    message = mail.message
    # The linter's sample order when no --order is given.
    assert message["Subject"] == "[TEST] Thank you for your order #1001 at Sample Shop"
    assert message["To"] == "qa@example.net"
    text = mail.part("text/plain")
    assert "Hi Anna," in text
    assert "Diapers M, 60 pcs" in text
    assert 'style="' in mail.part("text/html")
    out = capsys.readouterr().out
    assert str(message["Message-ID"]) in out
    assert "250 Message accepted" in out


def test_send_test_with_an_order_and_a_locale(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    cli_env(monkeypatch, settings)
    order, body = order_file(tmp_path, locale="en", first_name="Bea")
    code = main(
        [
            "send-test",
            "thank-you",
            "--to",
            "qa@example.net",
            "--order",
            str(order),
            "--locale",
            "ru",
        ]
    )
    assert code == 0
    [mail] = smtp_sink.received
    # The order's data, sent to the tester rather than to the order's customer.
    assert mail.recipients == ["qa@example.net"]
    assert mail.message["Subject"] == (
        f"[TEST] Спасибо за заказ №{body['order']['id']} в Aftersale Shop"
    )
    assert "Bea, здравствуйте!" in mail.part("text/plain")


def test_a_marketing_tests_unsubscribe_link_unsubscribes_nobody(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, smtp_sink: SmtpSink
) -> None:
    cli_env(monkeypatch, settings)
    monkeypatch.setenv("AFTERSALE_INBOUND_DOMAIN", "mail.shop.example")
    add_rule(settings, "diapers-restock.yaml")
    assert main(["send-test", "diapers-restock", "--to", "qa@example.net"]) == 0
    [mail] = smtp_sink.received
    assert str(mail.message["Subject"]).startswith("[TEST] ")
    [header] = mail.message.get_all("List-Unsubscribe")
    link, mailto = header.split(", ")
    token = link.strip("<>").rsplit("/", 1)[1]
    # The sample token names no customer: the page shows, nobody's consent changes.
    assert read_token(token, secrets=settings.unsubscribe_secrets) == CustomerToken(
        SAMPLE_CUSTOMER_ID
    )
    assert mailto == f"<mailto:unsubscribe+{token}@mail.shop.example>"


def test_a_refusal_exits_1_with_the_servers_answer(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    smtp_sink: SmtpSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_env(monkeypatch, settings)
    smtp_sink.rcpt_reply = lambda _address: "550 5.1.1 <qa@example.net>: no such user"
    assert main(["send-test", "thank-you", "--to", "qa@example.net"]) == 1
    assert smtp_sink.received == []
    captured = capsys.readouterr()
    assert "550 5.1.1 <qa@example.net>: no such user" in captured.err
    assert captured.out == ""


def test_no_server_exits_1(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_env(monkeypatch, settings)
    port = free_port()  # nothing listens there
    monkeypatch.setenv("AFTERSALE_SMTP_URL", f"smtp://127.0.0.1:{port}?starttls=off&timeout=2")
    assert main(["send-test", "thank-you", "--to", "qa@example.net"]) == 1
    assert f"127.0.0.1:{port} did not take the message" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nope", "--to", "qa@example.net"], "no rule 'nope' (loaded: thank-you)"),
        (["thank-you", "--to", "not an address"], "invalid email address"),
    ],
)
def test_bad_arguments_exit_1(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    smtp_sink: SmtpSink,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    says: str,
) -> None:
    cli_env(monkeypatch, settings)
    assert main(["send-test", *args]) == 1
    assert says in capsys.readouterr().err
    assert smtp_sink.received == []
