"""Email addresses as they go on the wire: internationalised domains in punycode.

One function for the envelope (app/mail/sender.py), the headers (app/mail/compose.py) and
the domains of the settings (app/config.py), so `anna@münchen.de` is the same address in
all. IDNA 2008 with UTS 46 mapping, as mail providers resolve it (`straße.de` is
`xn--strae-oqa.de`, not IDNA 2003's `strasse.de`).
"""

from __future__ import annotations

import re

import idna


def ascii_domain(domain: str) -> str:
    """`domain` in its ASCII (punycode) form; ValueError when it is no valid domain."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"invalid domain {domain!r}: {exc}") from exc


_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")


def dns_domain(value: str) -> str:
    """A domain as it goes on the wire: lower-case, IDNA-encoded; ValueError if it is none."""
    try:
        domain = ascii_domain(value.strip().rstrip(".")).lower()
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a domain name") from exc
    if len(domain) > 253 or not DNS_NAME.fullmatch(domain):
        raise ValueError(f"{value!r} is not a domain name")
    return domain


# Names no real sender owns (RFC 2606, RFC 6761): mail from them fails SPF/DMARC everywhere.
_RESERVED_NAMES = {"example.com", "example.org", "example.net", "localhost"}
_RESERVED_SUFFIXES = (".test", ".invalid", ".localhost", ".example")


def is_reserved_domain(domain: str) -> bool:
    """Whether `domain` (or a parent of it) is reserved for documentation and testing."""
    domain = domain.strip().rstrip(".").lower()
    return (
        domain in _RESERVED_NAMES
        or any(domain.endswith("." + name) for name in _RESERVED_NAMES)
        or domain.endswith(_RESERVED_SUFFIXES)
        or domain in {suffix[1:] for suffix in _RESERVED_SUFFIXES}
    )


def bounce_address(value: str) -> str:
    """BOUNCE_ADDRESS: one plain address whose local part VERP can extend with `+reference`."""
    local, at, domain = value.strip().rpartition("@")
    if not at or not local or "+" in local or not DNS_NAME.fullmatch(domain):
        raise ValueError(f"{value!r}: one plain address without '+', e.g. bounces@mail.example.com")
    return f"{local}@{dns_domain(domain)}"
