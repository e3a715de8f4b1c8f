"""Email addresses as they go on the wire: internationalised domains in punycode.

One function for the envelope (app/mail/sender.py) and the headers (app/mail/compose.py),
so `anna@münchen.de` is the same address in both. IDNA 2008 with UTS 46 mapping, as mail
providers resolve it (`straße.de` is `xn--strae-oqa.de`, not IDNA 2003's `strasse.de`).
"""

from __future__ import annotations

import idna


def ascii_domain(domain: str) -> str:
    """`domain` in its ASCII (punycode) form; ValueError when it is no valid domain."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"invalid domain {domain!r}: {exc}") from exc
