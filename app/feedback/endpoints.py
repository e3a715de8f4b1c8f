"""`POST /webhooks/mail/{provider}`: bounces and complaints from sending providers.

Each provider's request is authenticated its own way (SNS certificate, basic auth, ECDSA,
HMAC) before anything is read; an unconfigured provider answers 404 naming the setting.
Every report is recorded once by the provider's event id, so redeliveries answer 200 and
change nothing.
"""

from __future__ import annotations

import logging
import pathlib
import time
from functools import lru_cache
from typing import Annotated, Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import APIRouter, Header, HTTPException, Path, Request, status

from app.api.deps import RuntimeDep, SessionDep
from app.config import Settings
from app.feedback import mailgun, postmark, sendgrid, ses
from app.feedback.model import PROVIDERS, Feedback, FeedbackError
from app.feedback.schemas import FeedbackResult
from app.feedback.service import apply_feedback
from app.intake.webhooks import read_limited_body

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])


@router.post(
    "/webhooks/mail/{provider}",
    response_model=FeedbackResult,
    summary="Bounces and complaints from Amazon SES (SNS), Postmark, SendGrid or Mailgun",
    responses={
        401: {"description": "signature or credentials missing or wrong"},
        404: {"description": "unknown provider, or not configured (the setting is named)"},
        422: {"description": "not a payload of this provider (the field is named)"},
        503: {"description": "the configured SNS certificate or SendGrid key is unusable"},
    },
)
async def receive_mail_feedback(
    provider: Annotated[str, Path(description="ses, postmark, sendgrid or mailgun")],
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    authorization: Annotated[str | None, Header()] = None,
    x_twilio_email_event_webhook_signature: Annotated[str | None, Header()] = None,
    x_twilio_email_event_webhook_timestamp: Annotated[str | None, Header()] = None,
) -> Any:
    if provider not in PROVIDERS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown provider {provider!r}")
    settings = runtime.settings
    body = await read_limited_body(request)
    result_status = "ok"
    try:
        if provider == "ses":
            reports, result_status = await _ses(settings, body)
        elif provider == "postmark":
            _check_postmark(settings, authorization)
            reports = postmark.parse_webhook(body)
        elif provider == "sendgrid":
            sendgrid.verify(
                public_key=_sendgrid_key(
                    _required(settings.sendgrid_webhook_public_key, "SENDGRID_WEBHOOK_PUBLIC_KEY")
                ),
                signature=x_twilio_email_event_webhook_signature,
                timestamp=x_twilio_email_event_webhook_timestamp,
                body=body,
                now=time.time(),
                max_age=settings.mail_webhook_max_age_seconds,
            )
            reports = sendgrid.parse_events(body)
        else:
            key = _required(settings.mailgun_webhook_signing_key, "MAILGUN_WEBHOOK_SIGNING_KEY")
            event = mailgun.read_webhook(
                body,
                signing_key=key.get_secret_value(),
                now=time.time(),
                max_age=settings.mail_webhook_max_age_seconds,
            )
            reports = mailgun.parse_event(event)
    except (ses.SignatureError, sendgrid.SignatureError, mailgun.SignatureError) as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
    except FeedbackError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    applied = await apply_feedback(
        session, reports=reports, secret=settings.secret_key, now=runtime.clock.now()
    )
    return FeedbackResult(
        recorded=applied.recorded,
        duplicates=applied.duplicates,
        suppressed=applied.suppressed,
        unmatched=applied.unmatched,
        status=result_status,
    )


def _required(value: Any, setting: str) -> Any:
    # Unconfigured, the provider's URL does not exist here (nothing will ever accept it).
    if value is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"not configured: set AFTERSALE_{setting}")
    return value


def _check_postmark(settings: Settings, authorization: str | None) -> None:
    username = _required(settings.postmark_webhook_username, "POSTMARK_WEBHOOK_USERNAME")
    password = _required(settings.postmark_webhook_password, "POSTMARK_WEBHOOK_PASSWORD")
    if not postmark.check_basic_auth(
        authorization, username=username, password=password.get_secret_value()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong basic auth credentials",
            headers={"WWW-Authenticate": 'Basic realm="aftersale"'},
        )


async def _ses(settings: Settings, body: bytes) -> tuple[list[Feedback], str]:
    path = _required(settings.ses_sns_certificate, "SES_SNS_CERTIFICATE")
    message = ses.read_sns(
        body, public_key=_sns_key(pathlib.Path(path)), topic_arns=settings.ses_sns_topic_arns
    )
    if message.type == "Notification":
        return ses.parse_notification(message), "ok"
    if message.type == "SubscriptionConfirmation" and message.subscribe_url:
        if settings.ses_sns_confirm_subscriptions and _is_sns_url(message.subscribe_url):
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(message.subscribe_url)
            if response.is_success:
                log.info("SNS subscription to %s confirmed", message.topic_arn)
                return [], "subscription_confirmed"
            log.warning("SNS subscription confirmation answered %s", response.status_code)
        # The URL holds no personal data: the operator opens it to confirm.
        log.warning(
            "SNS subscription to %s waits for confirmation: open %s",
            message.topic_arn,
            message.subscribe_url,
        )
        return [], "subscription_logged"
    log.info("SNS %s for %s", message.type, message.topic_arn)
    return [], "ok"


def _is_sns_url(url: str) -> bool:
    host = httpx.URL(url).host
    return (
        url.startswith("https://") and host.startswith("sns.") and host.endswith(".amazonaws.com")
    )


@lru_cache(maxsize=4)
def _sns_key_at(path: pathlib.Path, mtime: float) -> rsa.RSAPublicKey:
    return ses.load_certificate(path.read_bytes())


def _sns_key(path: pathlib.Path) -> rsa.RSAPublicKey:
    try:
        return _sns_key_at(path, path.stat().st_mtime)
    except (OSError, ValueError) as exc:
        log.error("AFTERSALE_SES_SNS_CERTIFICATE %s is unusable: %s", path, type(exc).__name__)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "AFTERSALE_SES_SNS_CERTIFICATE cannot be read as a PEM certificate",
        ) from None


@lru_cache(maxsize=4)
def _sendgrid_key(value: str) -> ec.EllipticCurvePublicKey:
    try:
        return sendgrid.load_public_key(value)
    except ValueError:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "AFTERSALE_SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER or PEM EC public key",
        ) from None
