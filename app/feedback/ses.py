"""Amazon SES bounce and complaint notifications, delivered by SNS over HTTPS. Pure.

SNS signs each message (SignatureVersion 1: RSA SHA1, 2: RSA SHA256) over a canonical string
of some of its fields. The certificate is the operator's configured PEM, never the message's
SigningCertURL: a signature made by whoever controls a URL proves nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from app.feedback.model import SES, Feedback, FeedbackError, angle_message_id, json_object
from app.feedback.reports import REFERENCE_HEADER
from app.models import FeedbackKind

_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


class SignatureError(ValueError):
    pass


@dataclass(frozen=True)
class SnsMessage:
    type: str  # Notification, SubscriptionConfirmation, UnsubscribeConfirmation
    message_id: str
    topic_arn: str
    message: str
    subscribe_url: str | None


def load_certificate(pem: bytes) -> rsa.RSAPublicKey:
    """The RSA public key of the SNS signing certificate; ValueError if it is none."""
    key = x509.load_pem_x509_certificate(pem).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the SNS certificate does not hold an RSA key")
    return key


def string_to_sign(body: Mapping[str, Any]) -> bytes:
    """The canonical "Name\\nvalue\\n" lines SNS signs, in its documented order."""
    fields = _NOTIFICATION_FIELDS if body.get("Type") == "Notification" else _SUBSCRIPTION_FIELDS
    lines = []
    for name in fields:
        value = body.get(name)
        if value is None:
            if name == "Subject":
                continue  # only when present
            raise SignatureError(f"SNS message without {name}")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


def read_sns(raw: bytes, *, public_key: rsa.RSAPublicKey, topic_arns: Sequence[str]) -> SnsMessage:
    """A verified SNS message; SignatureError if not signed by `public_key` or from a topic
    not in `topic_arns` (empty: any), FeedbackError if it is not an SNS message at all."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise FeedbackError("body: not JSON") from None
    if not isinstance(body, dict):
        raise FeedbackError("body: not a JSON object")
    for name in ("Type", "MessageId", "TopicArn", "Message", "Signature", "SignatureVersion"):
        if not isinstance(body.get(name), str):
            raise FeedbackError(f"{name}: missing or not a string")
    algorithm = _HASHES.get(body["SignatureVersion"])
    if algorithm is None:
        raise SignatureError("SignatureVersion must be 1 or 2")
    try:
        signature = base64.b64decode(body["Signature"], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("Signature is not base64") from None
    try:
        public_key.verify(signature, string_to_sign(body), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise SignatureError("invalid SNS signature") from None
    if topic_arns and body["TopicArn"] not in topic_arns:
        raise SignatureError("TopicArn is not one of AFTERSALE_SES_SNS_TOPIC_ARNS")
    subscribe_url = body.get("SubscribeURL")
    return SnsMessage(
        type=body["Type"],
        message_id=body["MessageId"],
        topic_arn=body["TopicArn"],
        message=body["Message"],
        subscribe_url=subscribe_url if isinstance(subscribe_url, str) else None,
    )


def parse_notification(sns: SnsMessage) -> list[Feedback]:
    """The feedback in an SES notification (`notificationType`, or `eventType` when it comes
    from event publishing): one per bounced or complaining recipient."""
    try:
        notification = json.loads(sns.message)
    except ValueError:
        raise FeedbackError("Message: not JSON") from None
    if not isinstance(notification, dict):
        raise FeedbackError("Message: not a JSON object")
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = json_object(notification.get("mail"))
    reference, smtp_message_id = _our_headers(mail)
    found = []
    if kind == "Bounce":
        bounce = _object(notification, "bounce")
        bounce_type = str(bounce.get("bounceType") or "")
        feedback_kind = (
            FeedbackKind.HARD_BOUNCE if bounce_type == "Permanent" else FeedbackKind.SOFT_BOUNCE
        )
        for index, recipient in enumerate(_list(bounce, "bouncedRecipients")):
            detail = " ".join(
                str(part)
                for part in (
                    f"SES {bounce_type}/{bounce.get('bounceSubType') or ''}",
                    recipient.get("status") or "",
                    recipient.get("diagnosticCode") or "",
                )
                if part
            )
            found.append(
                Feedback(
                    provider=SES,
                    event_id=f"{sns.message_id}:{index}",
                    kind=feedback_kind,
                    recipient=_address(recipient.get("emailAddress")),
                    detail=detail[:500],
                    reference=reference,
                    smtp_message_id=smtp_message_id,
                )
            )
    elif kind == "Complaint":
        complaint = _object(notification, "complaint")
        feedback_type = str(complaint.get("complaintFeedbackType") or "abuse")
        if feedback_type == "not-spam":
            return []
        for index, recipient in enumerate(_list(complaint, "complainedRecipients")):
            found.append(
                Feedback(
                    provider=SES,
                    event_id=f"{sns.message_id}:{index}",
                    kind=FeedbackKind.COMPLAINT,
                    recipient=_address(recipient.get("emailAddress")),
                    detail=f"SES complaint {feedback_type}",
                    reference=reference,
                    smtp_message_id=smtp_message_id,
                )
            )
    return found


def _our_headers(mail: dict[str, Any]) -> tuple[str | None, str | None]:
    """Our reference and Message-ID, when SES includes the original headers."""
    reference = None
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == (
            REFERENCE_HEADER.lower()
        ):
            reference = str(header.get("value") or "") or None
    common = json_object(mail.get("commonHeaders"))
    return reference, angle_message_id(common.get("messageId"))


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if not isinstance(value, dict):
        raise FeedbackError(f"Message.{name}: missing or not an object")
    return value


def _list(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = body.get(name)
    if not isinstance(value, list):
        raise FeedbackError(f"Message.{name}: missing or not a list")
    return [item for item in value if isinstance(item, dict)]


def _address(value: object) -> str | None:
    return value.strip().lower() if isinstance(value, str) and "@" in value else None
