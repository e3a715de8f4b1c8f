"""Turn a rendered email into a MIME message that cannot carry injected headers.

Names, subjects and extra header values come from webhooks and templates, so each
one goes through `clean_header_value` before it reaches a header, and addresses are
checked to be exactly one plain address.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from app.mail.templates import RenderedEmail

# C0/C1 controls (CR, LF, NUL, tab, NEL...) and the Unicode line/paragraph separators,
# all of which Python's email package treats as line breaks or mangles.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
# RFC 2047: whitespace between two adjacent encoded-words is not part of the text.
_BETWEEN_WORDS = re.compile(r"(?<=\?=)\s+(?==\?)")
_HEADER_NAME = re.compile(r"[!-9;-~]+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*")
# Headers this module owns; extra_headers may not replace or add to them.
_RESERVED = frozenset(
    {
        "date",
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "sender",
        "subject",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "return-path",
        "list-unsubscribe",
        "list-unsubscribe-post",
    }
)
# What may sit between the angle brackets of List-Unsubscribe: an http(s) URL of plain
# URL characters, so nothing in it can close the bracket or break the header.
_UNSUBSCRIBE_URL = re.compile(r"https?://[A-Za-z0-9._~:/?#\[\]@!$&'()*+;=%-]+")


class _SmtpPolicy(policy.EmailPolicy):
    """policy.SMTP, except that List-Unsubscribe is written on one line as it is.

    Python folds a header longer than 78 characters by turning it into RFC 2047
    encoded-words, and mail providers do not decode those inside a URL, so the one-click
    button would silently vanish. The value is a checked ASCII URL in angle brackets, and
    one line stays far below the 998-character limit.
    """

    def fold(self, name: str, value: str) -> str:
        if name.lower() == "list-unsubscribe":
            return f"{name}: {value}{self.linesep}"
        folded: str = super().fold(name, value)
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() == "list-unsubscribe":
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_SMTP = _SmtpPolicy(linesep="\r\n")


def clean_header_value(value: str) -> str:
    """`value` as one safe header line: encoded-words decoded, controls become spaces.

    Python's email package decodes RFC 2047 encoded-words when it refolds a header, so
    "=?utf-8?q?a=0D=0ABcc:_x@y?=" would turn into a real line break on output. Decoding
    them here first means the control characters they hide are cleaned like any other.
    """
    value = _decode_encoded_words(value)
    value = _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()
    # Whatever still looks like an encoded-word (malformed, unknown charset, nested)
    # is defused so the library cannot decode it later.
    return value.replace("=?", "= ?")


def _decode_encoded_words(value: str) -> str:
    # Word by word: email.header.decode_header on a mixed string returns the plain
    # parts as raw-unicode-escape bytes, which would turn "山田" into "\\u5c71\\u7530".
    for _ in range(3):
        if not _ENCODED_WORD.search(value):
            break
        value = _ENCODED_WORD.sub(_decode_word, _BETWEEN_WORDS.sub("", value))
    return value


def _decode_word(match: re.Match[str]) -> str:
    try:
        [(raw, charset)] = decode_header(match.group())
        if isinstance(raw, str):
            return raw
        decoded: str = raw.decode(charset or "ascii", errors="replace")
        return decoded
    except (HeaderParseError, LookupError, ValueError):
        # Left as is; clean_header_value defuses it afterwards.
        return match.group()


def _address(address: str, display_name: str | None = None) -> Address:
    """One plain address, with an IDNA-encoded domain; ValueError for anything else."""
    if address != address.strip() or _CONTROL.search(address):
        raise ValueError(f"invalid email address {address!r}: whitespace or control characters")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"invalid email address {address!r}: needs local@domain")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"invalid email address {address!r}: bad domain") from exc
    if not local.isascii():
        # Would need SMTPUTF8, which the sending path does not negotiate.
        raise ValueError(f"invalid email address {address!r}: non-ASCII local part")
    if not _DOMAIN.fullmatch(ascii_domain) and not (
        ascii_domain.startswith("[") and ascii_domain.endswith("]")
    ):
        raise ValueError(f"invalid email address {address!r}: bad domain")
    name = clean_header_value(display_name) if display_name else ""
    try:
        # Address parses addr_spec and refuses anything beyond one address.
        return Address(display_name=name, addr_spec=f"{local}@{ascii_domain}")
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValueError(f"invalid email address {address!r}: {exc}") from exc


def _reply_to(value: str) -> Address:
    """Reply-To given as "addr" or "Name <addr>"."""
    header = policy.default.header_factory("reply-to", clean_header_value(value))
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    if len(addresses) != 1 or header.defects:
        raise ValueError(f"reply_to must be exactly one address, got {value!r}")
    [address] = addresses
    return _address(address.addr_spec, address.display_name)


def new_message_id(domain: str) -> str:
    """A new "<random@domain>"; 128 random bits so IDs can't be guessed or collide."""
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"invalid Message-ID domain {domain!r}")
    return f"<{secrets.token_hex(16)}@{domain}>"


def compose_message(
    *,
    rendered: RenderedEmail,
    from_name: str,
    from_address: str,
    to_name: str | None,
    to_address: str,
    message_id_domain: str,
    now: datetime,
    reply_to: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
    unsubscribe_url: str | None = None,
) -> tuple[EmailMessage, str]:
    """A multipart/alternative (text, then HTML) message and its Message-ID.

    With `unsubscribe_url` (marketing mail) it carries the RFC 8058 one-click headers, so
    mail providers can offer an unsubscribe button that POSTs to that URL.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    message_id = new_message_id(message_id_domain)
    msg = EmailMessage(policy=_SMTP)
    msg["Date"] = format_datetime(now)
    msg["From"] = _address(from_address, from_name)
    msg["To"] = _address(to_address, to_name)
    if reply_to:
        msg["Reply-To"] = _reply_to(reply_to)
    msg["Subject"] = clean_header_value(rendered.subject)
    msg["Message-ID"] = message_id
    if unsubscribe_url is not None:
        if not _UNSUBSCRIBE_URL.fullmatch(unsubscribe_url):
            raise ValueError(f"invalid unsubscribe URL {unsubscribe_url!r}")
        msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in (extra_headers or {}).items():
        if not _HEADER_NAME.fullmatch(name) or name.lower() in _RESERVED:
            raise ValueError(f"extra header {name!r} is not allowed")
        msg[name] = clean_header_value(value)
    # Quoted-printable keeps both parts 7-bit clean for servers without 8BITMIME.
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    for part in msg.iter_parts():
        # add_alternative copies MIME-Version into the part; it belongs on the top only.
        del part["MIME-Version"]
    return msg, message_id


def message_bytes(msg: EmailMessage) -> bytes:
    """The message as sent over SMTP: CRLF line endings, long lines folded."""
    return msg.as_bytes(policy=_SMTP)
