"""Provider webhooks at POST /webhooks/mail/{provider}, on the providers' documented payloads
(SES notification examples, Postmark's bounce and spam-complaint webhooks, SendGrid's Event
Webhook reference, Mailgun's webhook payloads), signed as each provider signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from httpx import AsyncClient, Response
from sqlalchemy import select

from app.models import MailFeedbackEvent, Suppression
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.feedback.conftest import (
    MAILGUN_KEY,
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    TOPIC_ARN,
    Keys,
    Sent,
    send_one,
    sns_sign,
)
from tests.smtp_sink import SmtpSink

ADDRESS = "juergen.weiss@example.org"


async def state(runtime: Runtime) -> tuple[list[tuple[Any, ...]], list[tuple[str, str]]]:
    async with runtime.session_factory() as session:
        events = [
            (e.provider, e.kind, e.message_id, e.recipient)
            for e in (await session.execute(select(MailFeedbackEvent))).scalars()
        ]
        suppressions = [
            (s.email, s.reason) for s in (await session.execute(select(Suppression))).scalars()
        ]
    return events, suppressions


# -- Amazon SES through SNS ------------------------------------------------------------------


def ses_bounce(sent: Sent, *, bounce_type: str = "Permanent") -> dict[str, Any]:
    """AWS's "bounce notification with a DSN" example, about our message."""
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "reportingMTA": "dns; email.example.com",
            "bouncedRecipients": [
                {
                    "emailAddress": ADDRESS,
                    "status": "5.1.1" if bounce_type == "Permanent" else "4.4.7",
                    "action": "failed",
                    "diagnosticCode": f"smtp; 550 5.1.1 <{ADDRESS}>... User",
                }
            ],
            "bounceSubType": "General",
            "timestamp": "2026-11-20T10:00:38.237Z",
            "feedbackId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
            "remoteMtaIp": "127.0.2.0",
        },
        "mail": {
            "timestamp": "2026-11-20T10:00:01.000Z",
            "source": "shop@example.com",
            "sourceArn": "arn:aws:ses:eu-central-1:123456789012:identity/example.com",
            "sourceIp": "127.0.3.0",
            "sendingAccountId": "123456789012",
            "callerIdentity": "IAM_user_or_role_name",
            "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
            "destination": [ADDRESS],
            "headersTruncated": False,
            "headers": [
                {"name": "From", "value": '"Aftersale Shop" <shop@example.com>'},
                {"name": "To", "value": f'"Jürgen Weiß" <{ADDRESS}>'},
                {"name": "Message-ID", "value": sent.smtp_message_id},
                {"name": "X-Aftersale-Message", "value": sent.reference},
                {"name": "Subject", "value": "Thank you for your order"},
            ],
            "commonHeaders": {
                "from": ["Aftersale Shop <shop@example.com>"],
                "date": "Fri, 20 Nov 2026 10:00:00 +0000",
                "to": [f"Jürgen Weiß <{ADDRESS}>"],
                "messageId": sent.smtp_message_id,
                "subject": "Thank you for your order",
            },
        },
    }


def ses_complaint() -> dict[str, Any]:
    """AWS's complaint example, without the original headers (not configured to include them)."""
    return {
        "notificationType": "Complaint",
        "complaint": {
            "userAgent": "AnyCompany Feedback Loop (V0.01)",
            "complainedRecipients": [{"emailAddress": ADDRESS}],
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2026-11-20T10:05:38.237Z",
            "timestamp": "2026-11-20T10:05:38.237Z",
            "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000",
        },
        "mail": {
            "timestamp": "2026-11-20T10:00:01.000Z",
            "messageId": "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
            "source": "shop@example.com",
            "sourceArn": "arn:aws:ses:eu-central-1:123456789012:identity/example.com",
            "sourceIp": "127.0.3.0",
            "sendingAccountId": "123456789012",
            "destination": [ADDRESS],
        },
    }


def sns_notification(message: dict[str, Any], message_id: str) -> dict[str, str]:
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC_ARN,
        "Message": json.dumps(message),
        "Timestamp": "2026-11-20T10:00:39.118Z",
        "UnsubscribeURL": "https://sns.eu-central-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
        f"{TOPIC_ARN}:c9135db0-26c4-47ec-8998-413945fb5a96",
    }


async def post_ses(client: AsyncClient, body: bytes) -> Response:
    return await client.post(
        "/webhooks/mail/ses",
        content=body,
        headers={
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": json.loads(body)["Type"],
            "x-amz-sns-topic-arn": TOPIC_ARN,
        },
    )


async def test_ses_bounce_suppresses_once_under_either_signature_version(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    keys: Keys,
) -> None:
    sent = await send_one(client, runtime, dispatcher, smtp_sink)
    body = sns_notification(ses_bounce(sent), "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324")
    first = await post_ses(client, sns_sign(keys.sns_key, body, version="1"))
    assert first.status_code == 200, first.text
    assert first.json() == {
        "recorded": 1,
        "duplicates": 0,
        "suppressed": 1,
        "unmatched": 0,
        "status": "ok",
    }
    # SNS retries the same MessageId: nothing new.
    again = await post_ses(client, sns_sign(keys.sns_key, body, version="2"))
    assert again.json()["duplicates"] == 1
    assert await state(runtime) == (
        [("ses", "hard_bounce", sent.message_id, ADDRESS)],
        [(ADDRESS, "hard_bounce")],
    )


async def test_ses_transient_bounce_is_soft_and_complaint_matches_by_address(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    keys: Keys,
) -> None:
    sent = await send_one(client, runtime, dispatcher, smtp_sink)
    transient = sns_notification(ses_bounce(sent, bounce_type="Transient"), "b-transient-1")
    assert (await post_ses(client, sns_sign(keys.sns_key, transient))).json()["suppressed"] == 0
    complaint = sns_notification(ses_complaint(), "c-complaint-1")
    complaint["Subject"] = "Amazon SES Email Event Notification"
    response = await post_ses(client, sns_sign(keys.sns_key, complaint))
    assert response.json()["suppressed"] == 1
    events, suppressions = await state(runtime)
    assert events == [
        ("ses", "soft_bounce", sent.message_id, ADDRESS),
        ("ses", "complaint", sent.message_id, ADDRESS),  # the last mail sent to the address
    ]
    assert suppressions == [(ADDRESS, "complaint")]


async def test_ses_refuses_forged_and_foreign_messages(
    client: AsyncClient, runtime: Runtime, keys: Keys
) -> None:
    body = sns_notification(ses_complaint(), "c-forged-1")
    signed = json.loads(sns_sign(keys.sns_key, body))
    signed["Message"] = signed["Message"].replace(ADDRESS, "someone.else@example.org")
    forged = await post_ses(client, json.dumps(signed).encode())
    assert (forged.status_code, forged.json()) == (401, {"detail": "invalid SNS signature"})
    foreign = dict(body, TopicArn="arn:aws:sns:eu-central-1:999999999999:other")
    response = await post_ses(client, sns_sign(keys.sns_key, foreign))
    assert response.status_code == 401
    assert "TopicArn" in response.json()["detail"]
    broken = await post_ses(client, b'{"Type": "Notification"}')
    assert (broken.status_code, broken.json()["detail"]) == (
        422,
        "MessageId: missing or not a string",
    )
    assert await state(runtime) == ([], [])


async def test_ses_subscription_confirmation_is_logged_not_fetched(
    client: AsyncClient, keys: Keys, caplog: Any
) -> None:
    url = (
        "https://sns.eu-central-1.amazonaws.com/?Action=ConfirmSubscription"
        f"&TopicArn={TOPIC_ARN}&Token=2336412f37fb687f5d51e6e2425f004aed"
    )
    body = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2425f004aed",
        "TopicArn": TOPIC_ARN,
        "Message": f"You have chosen to subscribe to the topic {TOPIC_ARN}.\n"
        "To confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": url,
        "Timestamp": "2026-11-20T09:45:04.751Z",
    }
    with caplog.at_level("WARNING"):
        response = await post_ses(client, sns_sign(keys.sns_key, body, version="1"))
    assert response.json()["status"] == "subscription_logged"
    assert url in caplog.text


async def test_ses_without_a_certificate_answers_404_naming_the_setting(
    client: AsyncClient, runtime: Runtime, keys: Keys
) -> None:
    runtime.settings.ses_sns_certificate = None
    body = sns_sign(keys.sns_key, sns_notification(ses_complaint(), "c-1"))
    response = await post_ses(client, body)
    assert response.status_code == 404
    assert response.json()["detail"] == "not configured: set AFTERSALE_SES_SNS_CERTIFICATE"


# -- Postmark -------------------------------------------------------------------------------


def postmark_auth(user: str = POSTMARK_USER, password: str = POSTMARK_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def postmark_bounce(reference: str | None, *, bounce_type: str = "HardBounce") -> dict[str, Any]:
    metadata = {"aftersale": reference} if reference else {"a_key": "a_value"}
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": bounce_type,
        "TypeCode": 1 if bounce_type == "HardBounce" else 4096,
        "Name": "Hard bounce",
        "Tag": "thank-you",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": metadata,
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, "
        "mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": ADDRESS,
        "From": "shop@example.com",
        "BouncedAt": "2026-11-20T10:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Thank you for your order",
        "Content": None,
    }


async def test_postmark_bounce_and_spam_complaint(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    sent = await send_one(client, runtime, dispatcher, smtp_sink)
    url = "/webhooks/mail/postmark"
    soft = postmark_bounce(sent.reference, bounce_type="SoftBounce")
    soft["ID"] = 4323372036854775001
    assert (await client.post(url, json=soft, headers=postmark_auth())).json()["suppressed"] == 0
    response = await client.post(url, json=postmark_bounce(sent.reference), headers=postmark_auth())
    assert response.json()["recorded"] == 1 and response.json()["suppressed"] == 1
    complaint = {
        "RecordType": "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 100001,
        "Name": "Spam complaint",
        "Tag": "thank-you",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "Metadata": {"aftersale": sent.reference},
        "ServerID": 1234,
        "Description": "",
        "Details": "Test spam complaint details",
        "Email": ADDRESS,
        "From": "shop@example.com",
        "BouncedAt": "2026-11-20T11:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": "Thank you for your order",
        "Content": "<Abuse report dump>",
    }
    assert (await client.post(url, json=complaint, headers=postmark_auth())).status_code == 200
    # Postmark retries: the same record changes nothing.
    again = await client.post(url, json=complaint, headers=postmark_auth())
    assert again.json()["duplicates"] == 1
    events, suppressions = await state(runtime)
    assert events == [
        ("postmark", "soft_bounce", sent.message_id, ADDRESS),
        ("postmark", "hard_bounce", sent.message_id, ADDRESS),
        ("postmark", "complaint", sent.message_id, ADDRESS),
    ]
    # The first reason stands; the address is blocked either way.
    assert suppressions == [(ADDRESS, "hard_bounce")]


async def test_postmark_needs_its_basic_auth(client: AsyncClient, runtime: Runtime) -> None:
    url = "/webhooks/mail/postmark"
    for headers in ({}, postmark_auth(password="wrong-password"), {"Authorization": "Basic !!"}):
        response = await client.post(url, json=postmark_bounce(None), headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
    assert await state(runtime) == ([], [])
    delivery = {"RecordType": "Delivery", "MessageID": "x", "Recipient": ADDRESS}
    ignored = await client.post(url, json=delivery, headers=postmark_auth())
    assert ignored.json()["recorded"] == 0
    response = await client.post(url, json=postmark_bounce(None), headers=postmark_auth())
    assert response.json()["unmatched"] == 1  # no message of ours: still applied to the address
    assert await state(runtime) == (
        [("postmark", "hard_bounce", None, ADDRESS)],
        [(ADDRESS, "hard_bounce")],
    )


# -- SendGrid -------------------------------------------------------------------------------


def sendgrid_headers(keys: Keys, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = keys.sendgrid_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


def sendgrid_events(sent: Sent) -> list[dict[str, Any]]:
    """The Event Webhook reference's examples, about our message."""
    common = {
        "email": ADDRESS,
        "timestamp": 1763632869,
        "smtp-id": sent.smtp_message_id,
        "category": "thank-you",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    }
    return [
        {**common, "event": "processed", "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A=="},
        {
            **common,
            "event": "deferred",
            "sg_event_id": "qK1MxfAaE_ukyyNsjxTpkw==",
            "response": "400 try again later",
            "attempt": "5",
        },
        {
            **common,
            "event": "bounce",
            "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
            "reason": "500 unknown recipient",
            "status": "5.0.0",
            "type": "bounce",
            "aftersale": sent.reference,
        },
        {
            **common,
            "event": "spamreport",
            "sg_event_id": "37nvH5QBz858KGVYCM4uOA==",
        },
        {**common, "event": "open", "sg_event_id": "FOTFFO0ecsBE-zxFXfs6WA==", "useragent": "x"},
    ]


async def test_sendgrid_events_signed_with_ecdsa(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    keys: Keys,
) -> None:
    sent = await send_one(client, runtime, dispatcher, smtp_sink)
    body = json.dumps(sendgrid_events(sent)).encode()
    url = "/webhooks/mail/sendgrid"
    response = await client.post(url, content=body, headers=sendgrid_headers(keys, body))
    assert response.json() == {
        "recorded": 3,
        "duplicates": 0,
        "suppressed": 2,
        "unmatched": 0,
        "status": "ok",
    }
    again = await client.post(url, content=body, headers=sendgrid_headers(keys, body))
    assert again.json()["duplicates"] == 3
    events, suppressions = await state(runtime)
    assert events == [
        ("sendgrid", "soft_bounce", sent.message_id, ADDRESS),  # matched by smtp-id
        ("sendgrid", "hard_bounce", sent.message_id, ADDRESS),  # by our unique argument
        ("sendgrid", "complaint", sent.message_id, ADDRESS),
    ]
    assert suppressions == [(ADDRESS, "hard_bounce")]


async def test_sendgrid_refuses_bad_or_stale_signatures(
    client: AsyncClient, runtime: Runtime, keys: Keys
) -> None:
    body = json.dumps([{"email": ADDRESS, "event": "spamreport", "sg_event_id": "x1"}]).encode()
    url = "/webhooks/mail/sendgrid"
    tampered = body.replace(b"x1", b"x2")
    assert (
        await client.post(url, content=tampered, headers=sendgrid_headers(keys, body))
    ).status_code == 401
    stale = sendgrid_headers(keys, body, timestamp=int(time.time()) - 3600)
    assert (await client.post(url, content=body, headers=stale)).status_code == 401
    assert (await client.post(url, content=body)).status_code == 401
    assert await state(runtime) == ([], [])


# -- Mailgun --------------------------------------------------------------------------------


def mailgun_signed(event: dict[str, Any], *, token: str, timestamp: int | None = None) -> bytes:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(MAILGUN_KEY.encode(), (stamp + token).encode(), hashlib.sha256)
    signature = {"timestamp": stamp, "token": token, "signature": digest.hexdigest()}
    return json.dumps({"signature": signature, "event-data": event}).encode()


def mailgun_failed(sent: Sent, *, severity: str) -> dict[str, Any]:
    """Mailgun's "permanent failure" webhook example, about our message."""
    return {
        "id": "G9Bn5sl1TC6nu79C8C0bwg" if severity == "permanent" else "Fs7-5t81S2ioEHCbc4cq3g",
        "timestamp": 1763632895.375624,
        "log-level": "error" if severity == "permanent" else "warn",
        "event": "failed",
        "severity": severity,
        "reason": "bounce" if severity == "permanent" else "generic",
        "envelope": {
            "transport": "smtp",
            "sender": "shop@mg.example.com",
            "sending-ip": "209.61.154.250",
            "targets": ADDRESS,
        },
        "flags": {
            "is-routed": False,
            "is-authenticated": True,
            "is-system-test": False,
            "is-test-mode": False,
        },
        "recipient-domain": "example.org",
        "recipient": ADDRESS,
        "tags": ["thank-you"],
        "campaigns": [],
        "user-variables": {},
        "message": {
            "headers": {
                "to": f"Jürgen Weiß <{ADDRESS}>",
                "message-id": sent.smtp_message_id.strip("<>"),
                "from": "Aftersale Shop <shop@example.com>",
                "subject": "Thank you for your order",
            },
            "attachments": [],
            "size": 111,
        },
        "delivery-status": {
            "attempt-no": 1,
            "message": "",
            "code": 550 if severity == "permanent" else 452,
            "description": "5.1.1 The email account that you tried to reach does not exist."
            if severity == "permanent"
            else "4.2.2 Mailbox full",
            "session-seconds": 0.5,
        },
    }


async def test_mailgun_failures_and_complaint_signed_with_hmac(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    sent = await send_one(client, runtime, dispatcher, smtp_sink)
    url = "/webhooks/mail/mailgun"
    temporary = mailgun_signed(mailgun_failed(sent, severity="temporary"), token="a" * 50)
    assert (await client.post(url, content=temporary)).json()["suppressed"] == 0
    permanent = mailgun_signed(mailgun_failed(sent, severity="permanent"), token="b" * 50)
    assert (await client.post(url, content=permanent)).json()["suppressed"] == 1
    complained = {
        "id": "-Agny091SquKnsrW2NEKUA",
        "timestamp": 1763633123.501324,
        "log-level": "warn",
        "event": "complained",
        "envelope": {"sending-ip": "173.193.210.33"},
        "flags": {"is-test-mode": False},
        "message": {"headers": {"to": ADDRESS, "subject": "x"}, "attachments": [], "size": 111},
        "recipient": ADDRESS,
        "campaigns": [],
        "tags": ["thank-you"],
        "user-variables": {"aftersale": sent.reference},
    }
    assert (await client.post(url, content=mailgun_signed(complained, token="c" * 50))).json()[
        "recorded"
    ] == 1
    events, _ = await state(runtime)
    assert events == [
        ("mailgun", "soft_bounce", sent.message_id, ADDRESS),
        ("mailgun", "hard_bounce", sent.message_id, ADDRESS),
        ("mailgun", "complaint", sent.message_id, ADDRESS),
    ]


async def test_mailgun_refuses_bad_and_replayed_signatures(
    client: AsyncClient, runtime: Runtime
) -> None:
    url = "/webhooks/mail/mailgun"
    event = {"id": "x", "event": "complained", "recipient": ADDRESS}
    forged = json.loads(mailgun_signed(event, token="d" * 50))
    forged["signature"]["signature"] = "0" * 64
    assert (await client.post(url, json=forged)).status_code == 401
    old = mailgun_signed(event, token="e" * 50, timestamp=int(time.time()) - 7200)
    response = await client.post(url, content=old)
    assert (response.status_code, response.json()) == (
        401,
        {"detail": "signature.timestamp is not recent"},
    )
    assert (await client.post("/webhooks/mail/sparkpost", json={})).status_code == 404
    assert await state(runtime) == ([], [])
