"""SMTP failures judged by the stage of the dialogue: only the recipient stages can bounce."""

from __future__ import annotations

import pytest

from app.mail.replies import Stage, Verdict, enhanced_code, judge_reply


@pytest.mark.parametrize(
    ("stage", "code", "text", "verdict"),
    [
        # Our side: credentials, sender, the server going away, the network.
        (Stage.CONNECT, 535, "535 5.7.8 Authentication credentials invalid", Verdict.SENDER),
        (Stage.CONNECT, 554, "554 5.7.1 Service unavailable; client host blocked", Verdict.SENDER),
        (Stage.CONNECT, None, "SMTPConnectError: connection refused", Verdict.SENDER),
        (Stage.CONNECT, 421, "421 4.7.0 too many connections", Verdict.SENDER),
        (Stage.MAIL, 550, "550 5.7.1 Sender address rejected: not owned by user", Verdict.SENDER),
        (Stage.MAIL, 553, "553 5.1.8 Sender address domain not found", Verdict.SENDER),
        (Stage.MAIL, 451, "451 4.3.0 temporary failure", Verdict.SENDER),
        (Stage.MAIL, None, "SMTPServerDisconnected", Verdict.SENDER),
        (Stage.RCPT, 421, "421 4.4.2 closing connection", Verdict.SENDER),
        (Stage.DATA, 421, "421 4.3.2 shutting down", Verdict.SENDER),
        # A message that is too big is refused at MAIL FROM (SIZE) but is about the message.
        (Stage.MAIL, 552, "552 5.3.4 Message size exceeds fixed limit", Verdict.REJECTED),
        # 4xx about this message: try again, counting the attempt.
        (Stage.RCPT, 450, "450 4.2.0 greylisted", Verdict.TRANSIENT),
        (Stage.RCPT, 452, "452 4.2.2 mailbox full", Verdict.TRANSIENT),
        (Stage.DATA, 451, "451 4.7.1 try again later", Verdict.TRANSIENT),
        (Stage.DATA, None, "during DATA: SMTPReadTimeoutError", Verdict.TRANSIENT),
        # The mailbox does not exist or is disabled.
        (Stage.RCPT, 550, "550 5.1.1 <anna@example.org>: user unknown", Verdict.MAILBOX_GONE),
        (
            Stage.RCPT,
            550,
            "550-5.1.1 The email account does not exist.\n5.1.1 more",
            Verdict.MAILBOX_GONE,
        ),
        (Stage.RCPT, 550, "550 5.1.10 null MX", Verdict.MAILBOX_GONE),
        (Stage.RCPT, 550, "550 5.2.1 mailbox disabled", Verdict.MAILBOX_GONE),
        (Stage.DATA, 550, "550 5.1.1 recipient rejected after DATA", Verdict.MAILBOX_GONE),
        # Refused, but the address may be fine: policy, reputation, content, no enhanced code.
        (
            Stage.RCPT,
            550,
            "550 5.7.1 Service unavailable; client blocked by Spamhaus",
            Verdict.REJECTED,
        ),
        (Stage.RCPT, 550, "550 No such user here", Verdict.REJECTED),
        (Stage.RCPT, 553, "553 5.1.7 bad sender address syntax", Verdict.REJECTED),
        (Stage.RCPT, 552, "552 5.2.2 mailbox full", Verdict.REJECTED),
        (Stage.DATA, 554, "554 5.7.1 message rejected as spam", Verdict.REJECTED),
        (Stage.DATA, 554, "554 5.6.0 message content rejected", Verdict.REJECTED),
    ],
)
def test_verdict_by_stage_and_code(
    stage: Stage, code: int | None, text: str, verdict: Verdict
) -> None:
    assert judge_reply(stage, code, text) == verdict


def test_enhanced_code_is_read_only_at_the_start() -> None:
    assert enhanced_code("550 5.1.1 user unknown") == (5, 1, 1)
    assert enhanced_code("5.7.8 bad credentials") == (5, 7, 8)
    assert enhanced_code("550-5.1.10 null MX") == (5, 1, 10)
    # A dotted number later in the text (an IP, a version) is not a status code.
    assert enhanced_code("550 rejected: 5.1.1.4 is listed") is None
    assert enhanced_code("550 No such user") is None
