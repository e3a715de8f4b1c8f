"""What every outgoing message carries so feedback can name it. Pure.

- The envelope sender: `BOUNCE_ADDRESS` with the message's reference (VERP), so a bounce
  to it names the message even when the returned original is cut; FROM's address without
  a BOUNCE_ADDRESS.
- `X-Aftersale-Message: <reference>`: kept in DSN and ARF copies of the original, and
  in SES notifications that include the original headers.
- With MAIL_PROVIDER, that provider's own metadata header, which it echoes in webhooks
  (and strips before delivery).
"""

from __future__ import annotations

import json

from app.feedback import mailgun, postmark, sendgrid
from app.feedback.references import make_reference, verp_address
from app.feedback.reports import REFERENCE_HEADER


def envelope_sender(
    message_id: int, *, from_address: str, bounce_address: str | None, secret: str
) -> str:
    if bounce_address is None:
        return from_address
    return verp_address(bounce_address, make_reference(message_id, secret=secret))


def feedback_headers(message_id: int, *, provider: str, secret: str) -> dict[str, str]:
    reference = make_reference(message_id, secret=secret)
    headers = {REFERENCE_HEADER: reference}
    if provider == "postmark":
        headers[f"X-PM-Metadata-{postmark.METADATA_KEY}"] = reference
    elif provider == "sendgrid":
        headers["X-SMTPAPI"] = _json({"unique_args": {sendgrid.ARGUMENT: reference}})
    elif provider == "mailgun":
        headers["X-Mailgun-Variables"] = _json({mailgun.VARIABLE: reference})
    return headers


def _json(value: object) -> str:
    # No spaces: one header word, never folded or encoded, as the providers expect it.
    return json.dumps(value, separators=(",", ":"))
