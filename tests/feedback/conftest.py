"""Feedback tests: settings with a bounce address and every provider configured (keys and a
self-signed SNS certificate made here), and a message really sent through the dispatcher."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import select

from app.config import Settings
from app.models import Message
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.factories import order_created, post_event
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import Received, SmtpSink

BOUNCE_ADDRESS = "bounces@mail.shop-feedback.de"
TOPIC_ARN = "arn:aws:sns:eu-central-1:123456789012:ses-feedback"
POSTMARK_USER = "postmark-hook"
POSTMARK_PASSWORD = "Vj4q-postmark-webhook-pass"
MAILGUN_KEY = "key-5c0ad3f1e2b7d89a4f6c1e0b9d8a7c65"


@dataclass(frozen=True)
class Keys:
    sns_key: rsa.RSAPrivateKey
    sns_certificate: Path
    sendgrid_key: ec.EllipticCurvePrivateKey
    sendgrid_public: str  # base64 DER, as SendGrid shows it


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    sns_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.eu-central-1.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(sns_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(sns_key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("sns") / "SimpleNotificationService.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    public_der = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Keys(sns_key, path, sendgrid_key, base64.b64encode(public_der).decode())


@pytest.fixture
def settings(settings: Settings, keys: Keys) -> Settings:
    return settings.model_copy(
        update={
            "bounce_address": BOUNCE_ADDRESS,
            "ses_sns_certificate": keys.sns_certificate,
            "ses_sns_topic_arns": [TOPIC_ARN],
            "postmark_webhook_username": POSTMARK_USER,
            "postmark_webhook_password": SecretStr(POSTMARK_PASSWORD),
            "sendgrid_webhook_public_key": keys.sendgrid_public,
            "mailgun_webhook_signing_key": SecretStr(MAILGUN_KEY),
        }
    )


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "feedback-worker")
    yield worker
    await worker.sender.close()


@dataclass(frozen=True)
class Sent:
    message_id: int
    smtp_message_id: str
    received: Received

    @property
    def reference(self) -> str:
        return str(self.received.message["X-Aftersale-Message"])


async def send_one(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    *,
    email: str = "Juergen.Weiss@Example.org",
    customer_id: str = "7204811530221",
) -> Sent:
    """An order's thank-you, really sent to the SMTP sink; its row and what arrived."""
    response = await post_event(
        client, order_created(customer_id=customer_id, email=email, first_name="Jürgen")
    )
    assert response.status_code in (200, 201), response.text
    before = len(smtp_sink.received)
    report = await dispatcher.run_once()
    assert report.outcomes == {"sent": 1}, report
    async with runtime.session_factory() as session:
        message = (
            await session.execute(select(Message).order_by(Message.id.desc()).limit(1))
        ).scalar_one()
    assert message.smtp_message_id is not None
    return Sent(message.id, message.smtp_message_id, smtp_sink.received[before])


def sns_sign(key: rsa.RSAPrivateKey, body: dict[str, str], *, version: str = "2") -> bytes:
    """An SNS HTTP delivery as SNS makes it: the canonical string signed with RSA."""
    if body["Type"] == "Notification":
        fields = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        fields = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    canonical = "".join(f"{name}\n{body[name]}\n" for name in fields if name in body)
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
    signature = key.sign(canonical.encode(), padding.PKCS1v15(), algorithm)
    signed = {
        **body,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
        "SigningCertURL": "https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-6209c161c6221fdf56ec1eb5c821d112.pem",
    }
    return json.dumps(signed).encode()
