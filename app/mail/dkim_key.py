"""The DKIM signing key, as the DKIM_* settings give it: checked once, at start-up.

Pure: app/config.py refuses settings that would sign with nothing or with a key receivers
ignore, and app/mail/dkim.py signs with the `DkimConfig` made here. Errors are ValueErrors
that name the setting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from dkim.crypto import parse_pem_private_key

from app.mail.addresses import DNS_NAME, dns_domain

# RFC 8301: verifiers ignore signatures made with shorter RSA keys.
_MIN_DKIM_KEY_BITS = 1024


@dataclass(frozen=True)
class DkimConfig:
    """The key that signs outgoing mail, published at `{selector}._domainkey.{domain}`."""

    selector: str
    domain: str
    private_key: bytes = dataclasses.field(repr=False)


def dkim_selector(value: str) -> str:
    """DKIM_SELECTOR: `value` when it is a DNS label (or dotted labels)."""
    if not DNS_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a DNS label (letters, digits, '-', '.')")
    return value


def dkim_config(
    *,
    selector: str | None,
    key_path: Path | None,
    key_text: str | None,
    domain: str | None,
    from_address: str,
) -> DkimConfig | None:
    """What signs outgoing mail, or None when DKIM is not configured. Half a setup refuses:
    it would send unsigned mail while the operator believes it signed."""
    has_key = key_path is not None or key_text is not None
    if selector is None and not has_key:
        return None
    if selector is None:
        raise ValueError(
            "a DKIM key is set but AFTERSALE_DKIM_SELECTOR is not: set the selector its "
            "public key is published under (the s= of {selector}._domainkey.{domain})"
        )
    if not has_key:
        raise ValueError(
            f"AFTERSALE_DKIM_SELECTOR is {selector!r} but there is no key: set "
            "AFTERSALE_DKIM_PRIVATE_KEY_PATH (a PEM file) or AFTERSALE_DKIM_PRIVATE_KEY "
            "(the PEM text), or unset the selector to send unsigned"
        )
    key = read_dkim_key(path=key_path, text=key_text)
    if domain is None:
        try:
            domain = dns_domain(from_address.rpartition("@")[2])
        except ValueError as exc:
            raise ValueError(
                f"AFTERSALE_DKIM_DOMAIN: unset, and AFTERSALE_FROM has no usable domain ({exc})"
            ) from exc
    return DkimConfig(selector=selector, domain=domain, private_key=key)


def read_dkim_key(*, path: Path | None, text: str | None) -> bytes:
    """The PEM of an RSA key of at least 1024 bits, from a file or from the PEM text."""
    if path is not None and text is not None:
        raise ValueError(
            "set AFTERSALE_DKIM_PRIVATE_KEY_PATH or AFTERSALE_DKIM_PRIVATE_KEY, not both"
        )
    if path is not None:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ValueError(
                f"AFTERSALE_DKIM_PRIVATE_KEY_PATH: cannot read {path}: {exc.strerror or exc}"
            ) from exc
        name = "AFTERSALE_DKIM_PRIVATE_KEY_PATH"
    else:
        assert text is not None
        # A PEM put into one environment variable often arrives with "\n" for newlines.
        pem = (text.replace("\\n", "\n") if "\n" not in text else text).encode()
        name = "AFTERSALE_DKIM_PRIVATE_KEY"
    pem = pem.replace(b"\r\n", b"\n").strip() + b"\n"
    try:
        key = parse_pem_private_key(pem)
    except Exception as exc:  # a third-party parser of arbitrary bytes: any failure counts
        raise ValueError(f"{name}: not a PEM RSA private key ({exc})") from exc
    bits = int(key["modulus"]).bit_length()
    if bits < _MIN_DKIM_KEY_BITS:
        raise ValueError(
            f"{name}: the RSA key has {bits} bits; receivers ignore DKIM keys shorter than "
            f"{_MIN_DKIM_KEY_BITS} (use 2048)"
        )
    return pem
