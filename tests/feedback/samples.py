"""Bounce and complaint mail as servers write it: a Postfix DSN (RFC 3464) and an ARF report
(RFC 5965, after its section 5 example), around the original we really sent."""

from __future__ import annotations

DSN_BOUNDARY = "8B1E83E0123.1763632812/mx.mail.shop-feedback.de"


def dsn(
    original: bytes,
    *,
    to: str,
    recipient: str = "juergen.weiss@example.org",
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <juergen.weiss@example.org>: Recipient address "
    "rejected: User unknown in virtual mailbox table",
    report_id: str = "<20261120090012.8B1E83E0123@mx.mail.shop-feedback.de>",
) -> bytes:
    """A Postfix bounce of `original`, returning its headers only (text/rfc822-headers)."""
    headers = original.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n", "\n")
    text = f"""\
Return-Path: <>
Date: Fri, 20 Nov 2026 10:00:12 +0100 (CET)
From: MAILER-DAEMON@mx.mail.shop-feedback.de (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{DSN_BOUNDARY}"
Message-Id: {report_id}

This is a MIME-encapsulated message.

--{DSN_BOUNDARY}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.mail.shop-feedback.de.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.example.org[203.0.113.5] said: {diagnostic}
    (in reply to RCPT TO command)

--{DSN_BOUNDARY}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.mail.shop-feedback.de
X-Postfix-Queue-ID: 8B1E83E0123
X-Postfix-Sender: rfc822; {to}
Arrival-Date: Fri, 20 Nov 2026 10:00:11 +0100 (CET)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: {diagnostic}

--{DSN_BOUNDARY}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{headers}

--{DSN_BOUNDARY}--
"""
    return text.replace("\n", "\r\n").encode("ascii")


def arf(
    original: bytes,
    *,
    original_mail_from: str | None = None,
    original_rcpt_to: str | None = None,
    feedback_type: str = "abuse",
    report_id: str = "<433689.81121.example@mail.example.net>",
) -> bytes:
    """A mailbox provider's spam complaint about `original`, returned whole."""
    fields = [
        f"Feedback-Type: {feedback_type}",
        "User-Agent: SomeGenerator/1.0",
        "Version: 1",
    ]
    if original_mail_from:
        fields.append(f"Original-Mail-From: <{original_mail_from}>")
    if original_rcpt_to:
        fields.append(f"Original-Rcpt-To: <{original_rcpt_to}>")
    fields += [
        "Arrival-Date: Fri, 20 Nov 2026 10:01:00 +0000",
        "Reporting-MTA: dns; mail.example.net",
        "Source-IP: 192.0.2.1",
        "Reported-Domain: mail.shop-feedback.de",
    ]
    head = f"""\
From: <abuse@mail.example.net>
Date: Fri, 20 Nov 2026 11:00:00 +0000
Subject: FW: Thank you for your order
To: <fbl@mail.shop-feedback.de>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="part1_13d.2e68ed54_boundary"
Message-ID: {report_id}

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Fri, 20 Nov 2026 10:01:00 +0000.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

{chr(10).join(fields)}

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

"""
    tail = "\r\n--part1_13d.2e68ed54_boundary--\r\n"
    return head.replace("\n", "\r\n").encode("ascii") + original + tail.encode("ascii")
