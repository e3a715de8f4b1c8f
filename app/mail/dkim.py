"""DKIM signatures (RFC 6376) on outgoing messages: bytes in, signed bytes out.

rsa-sha256 with relaxed/relaxed canonicalization, which survives the header refolding and
trailing-whitespace changes that relays make. The signature covers the headers a reader
trusts and the one-click unsubscribe headers, so none of them can be changed in transit.
"""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32
from functools import lru_cache
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

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


# dkimpy (pinned in constraints.txt) canonicalizes, hashes and builds the header; its RSA is
# pure Python, 6.7 ms of CPU a message (bench/dispatch.py), more than building and sending
# the message together. RSASSA-PKCS1-v1_5 is deterministic, so OpenSSL's signature of the
# same digest is the same bytes (tests/mail/test_dkim.py compares them): dkimpy's hook is
# pointed at it, once, here.
PURE_PYTHON_RSA = dkim.RSASSA_PKCS1_v1_5_sign
_KEY_FIELDS = (
    "prime1",
    "prime2",
    "privateExponent",
    "exponent1",
    "exponent2",
    "coefficient",
    "publicExponent",
    "modulus",
)


def openssl_rsa_sign(digest: Any, private_key: dict[str, int]) -> bytes:
    """dkimpy's `RSASSA_PKCS1_v1_5_sign`, by OpenSSL (sha256 digests; others as before)."""
    if digest.name != "sha256":
        return bytes(PURE_PYTHON_RSA(digest, private_key))
    key = _openssl_key(tuple(private_key[name] for name in _KEY_FIELDS))
    return key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))


@lru_cache(maxsize=8)
def _openssl_key(numbers: tuple[int, ...]) -> rsa.RSAPrivateKey:
    p, q, d, dmp1, dmq1, iqmp, e, n = numbers
    public = rsa.RSAPublicNumbers(e=e, n=n)
    return rsa.RSAPrivateNumbers(
        p=p, q=q, d=d, dmp1=dmp1, dmq1=dmq1, iqmp=iqmp, public_numbers=public
    ).private_key()


dkim.RSASSA_PKCS1_v1_5_sign = openssl_rsa_sign


def _headers_to_sign(message: bytes) -> list[str]:
    # compat32 keeps header names as written and decodes nothing: only names are needed.
    present = [name.lower() for name in BytesHeaderParser(policy=compat32).parsebytes(message)]
    names: list[str] = []
    for name in SIGNED_HEADERS:
        count = present.count(name)
        if count:
            names.extend([name] * (count + 1))
    return names
