"""DKIM signatures (RFC 6376) on outgoing messages: bytes in, signed bytes out.

rsa-sha256 with relaxed/relaxed canonicalization, which survives the header refolding and
trailing-whitespace changes that relays make. The signature covers the headers a reader
trusts and the one-click unsubscribe headers, so none of them can be changed in transit.
"""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

import dkim

from app.mail.dkim_key import DkimConfig

# Signed when present, in this order. Each is listed once more than it occurs
# ("oversigned"), so adding a second From or Subject after signing breaks the signature.
SIGNED_HEADERS = (
    "from",
    "to",
    "cc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
)


def dkim_sign(message: bytes, key: DkimConfig | None) -> bytes:
    """`message` with a DKIM-Signature header in front; unchanged when `key` is None.

    `message` is what goes on the wire (CRLF line endings, as `message_bytes` writes it):
    anything that changes it afterwards must not touch the signed headers or the body.
    """
    if key is None:
        return message
    signature: bytes = dkim.sign(
        message,
        selector=key.selector.encode("ascii"),
        domain=key.domain.encode("ascii"),
        privkey=key.private_key,
        canonicalize=(b"relaxed", b"relaxed"),
        signature_algorithm=b"rsa-sha256",
        include_headers=[name.encode("ascii") for name in _headers_to_sign(message)],
        linesep=b"\r\n",
    )
    return signature + message


def _headers_to_sign(message: bytes) -> list[str]:
    # compat32 keeps header names as written and decodes nothing: only names are needed.
    present = [name.lower() for name in BytesHeaderParser(policy=compat32).parsebytes(message)]
    names: list[str] = []
    for name in SIGNED_HEADERS:
        count = present.count(name)
        if count:
            names.extend([name] * (count + 1))
    return names
