"""Turn a rendered email into MIME bytes that cannot carry injected headers.

Names, subjects and extra header values come from webhooks and templates, so each
one goes through `clean_header_value` before it reaches a header, and addresses are
checked to be exactly one plain address.

The bytes are written here rather than by `email.message.EmailMessage`: its header
parsing, refolding and generator cost about 5 ms a message, most of the dispatcher's
CPU. The output has the shape the email package gave (see `compose_message`), and the
tests parse it back with the email package to prove nothing changed on the way.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header
from email.headerregistry import Address
from email.utils import format_datetime
from functools import lru_cache

from app.mail.addresses import ascii_domain as to_ascii_domain
from app.mail.templates import RenderedEmail

# C0/C1 controls (CR, LF, NUL, tab, NEL...) and the Unicode line/paragraph separators,
# all of which Python's email package treats as line breaks or mangles.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
# RFC 2047: whitespace between two adjacent encoded-words is not part of the text.
_BETWEEN_WORDS = re.compile(r"(?<=\?=)\s+(?==\?)")
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*")
# RFC 5322 atext: what an atom (a word of a display name) or a dot-atom local part may hold.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_ATOMS = re.compile(rf"{_ATEXT}+(?: {_ATEXT}+)*")
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
# RFC 6531 adds every non-ASCII character (UTF8-non-ascii) to atext.
_UTF8_ATEXT = r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7f])"
_UTF8_DOT_ATOM = re.compile(rf"{_UTF8_ATEXT}+(?:\.{_UTF8_ATEXT}+)*")
# RFC 5321 caps a path at 256 octets with its angle brackets; it also keeps every
# address line far below the 998-character limit.
_MAX_ADDRESS = 254
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
# "List-Unsubscribe: <" + url + ">" must fit the 998-character line limit: mail providers
# do not decode encoded-words inside a URL, so it is never folded or encoded.
_MAX_UNSUBSCRIBE_URL = 998 - len("List-Unsubscribe: <>")
# The mailto: alternative (RFC 2369), an ASCII address with no query: nothing to inject.
_UNSUBSCRIBE_MAILTO = re.compile(r"mailto:[A-Za-z0-9.+_-]{1,64}@[A-Za-z0-9.-]{1,253}")

_CRLF = "\r\n"
_LINE = 78  # RFC 5322's recommended line length, where the email package folds
_WORD = 75  # RFC 2047's limit for one encoded-word
_EW_OVERHEAD = len("=?utf-8?b??=")
# Room below which an encoded-word goes to the next line: one 4-byte UTF-8 character
# needs 8 base64 or 12 "q" characters.
_EW_MIN_ROOM = _EW_OVERHEAD + 12
# "q" encoding: what may stay literal in an encoded-word inside a phrase (RFC 2047 5(3)),
# the strictest context, so the same words serve unstructured headers; space is "_".
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_BYTE = tuple(
    "_" if byte == 0x20 else chr(byte) if byte in _Q_SAFE else f"={byte:02X}" for byte in range(256)
)
_Q_LITERAL = bytes(sorted(_Q_SAFE | {0x20}))  # bytes one character long in "q"

# The parts' headers are fixed; MIME-Version belongs on the top level only.
_PART_HEADERS = {
    subtype: (
        f'Content-Type: text/{subtype}; charset="utf-8"{_CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{_CRLF}{_CRLF}"
    ).encode("ascii")
    for subtype in ("plain", "html")
}


@dataclass(frozen=True, slots=True)
class ComposedMessage:
    """A composed message: the exact bytes that go over SMTP (before DKIM signing)."""

    raw: bytes


def clean_header_value(value: str) -> str:
    """`value` as one safe header line: encoded-words decoded, controls become spaces.

    Python's email package decodes RFC 2047 encoded-words when it refolds a header, so
    "=?utf-8?q?a=0D=0ABcc:_x@y?=" would turn into a real line break on output. Decoding
    them here first means the control characters they hide are cleaned like any other.
    """
    value = _decode_encoded_words(value)
    value = _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()
    # Whatever still looks like an encoded-word (malformed, unknown charset, nested)
    # is defused so no reader decodes it later.
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


def _address(address: str) -> str:
    """One plain address as an addr-spec with an IDNA-encoded domain; ValueError else."""
    if address != address.strip() or _CONTROL.search(address):
        raise ValueError(f"invalid email address {address!r}: whitespace or control characters")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"invalid email address {address!r}: needs local@domain")
    try:
        ascii_domain = to_ascii_domain(domain)
    except ValueError as exc:
        raise ValueError(f"invalid email address {address!r}: bad domain") from exc
    if not local.isascii():
        # RFC 6532: a UTF-8 local part goes in the header as it is, and the message needs
        # SMTPUTF8, which the sender asks for (or refuses the message) by the same test.
        if not _DOMAIN.fullmatch(ascii_domain) or not _UTF8_DOT_ATOM.fullmatch(local):
            raise ValueError(f"invalid email address {address!r}: bad local part")
        addr_spec = f"{local}@{ascii_domain}"
    elif _DOMAIN.fullmatch(ascii_domain) and _DOT_ATOM.fullmatch(local):
        addr_spec = f"{local}@{ascii_domain}"  # nearly every address: no parsing needed
    elif _DOMAIN.fullmatch(ascii_domain) or (
        ascii_domain.startswith("[") and ascii_domain.endswith("]")
    ):
        # A quoted local part or a domain literal: the email package's parser decides.
        try:
            addr_spec = Address(addr_spec=f"{local}@{ascii_domain}").addr_spec
        # AttributeError: the parser trips over some malformed input ("=@[").
        except (ValueError, IndexError, AttributeError, HeaderParseError) as exc:
            raise ValueError(f"invalid email address {address!r}: {exc}") from exc
    else:
        raise ValueError(f"invalid email address {address!r}: bad domain")
    if len(addr_spec.encode("utf-8")) > _MAX_ADDRESS:
        raise ValueError(f"invalid email address {address!r}: longer than {_MAX_ADDRESS}")
    return addr_spec


def _mailbox_header(field: str, address: str, display_name: str | None) -> str:
    """`field: name <address>` (or just the address without a name), folded."""
    addr_spec = _address(address)
    name = clean_header_value(display_name) if display_name else ""
    if not name:
        return _fold(field, [(addr_spec, False)])
    return _fold(field, [*_phrase_words(field, name), (f"<{addr_spec}>", False)])


# The sender's and reply-to headers are the same for every message of a process.
_from_header = lru_cache(maxsize=64)(_mailbox_header)


@lru_cache(maxsize=64)
def _reply_to_header(value: str) -> str:
    """Reply-To given as "addr" or "Name <addr>"."""
    header = policy.default.header_factory("reply-to", clean_header_value(value))
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    if len(addresses) != 1 or header.defects:
        raise ValueError(f"reply_to must be exactly one address, got {value!r}")
    [address] = addresses
    return _mailbox_header("Reply-To", address.addr_spec, address.display_name)


def _phrase_words(field: str, name: str) -> list[tuple[str, bool]]:
    """A display name as (text, needs encoding) words for `_fold`."""
    if name.isascii():
        if _ATOMS.fullmatch(name):
            words = name.split(" ")
        else:
            # A quoted-string may fold at its spaces: unfolding gives the same text back.
            quoted = name.replace("\\", "\\\\").replace('"', '\\"')
            words = f'"{quoted}"'.split(" ")
        if any(_too_long(field, index, word) for index, word in enumerate(words)):
            # Encoded-words can split what no line holds; a quoted-string cannot.
            return [(name, True)]
        return [(word, False) for word in words]
    # Encoded-words stand for atoms, so ASCII words with specials go inside them too.
    return [
        (word, not (word.isascii() and _ATOMS.fullmatch(word)) or _too_long(field, index, word))
        for index, word in enumerate(name.split(" "))
    ]


def _unstructured_words(field: str, text: str) -> list[tuple[str, bool]]:
    """Free text (a subject) as (text, needs encoding) words for `_fold`."""
    return [
        (word, not word.isascii() or _too_long(field, index, word))
        for index, word in enumerate(text.split(" "))
    ]


def _too_long(field: str, index: int, word: str) -> bool:
    # The first word shares its line with "Field:", any other may start a line of its own.
    room = _LINE - len(field) - 2 if index == 0 else _LINE - 1
    return len(word) > room


def _fold(field: str, words: Iterable[tuple[str, bool]]) -> str:
    """`field: words` as header lines of at most 78 characters, folded at spaces.

    Plain words are written as they are. Each run of neighbouring words that need
    encoding becomes RFC 2047 encoded-words of at most 75 characters, split between
    UTF-8 characters; readers drop the whitespace between two encoded-words, and keep
    the one between an encoded-word and a plain word, so the text comes back exactly.
    """
    lines: list[str] = []
    line = f"{field}:"
    bare = True  # nothing after "field:" yet: the first word always goes there

    def put(piece: str) -> None:
        nonlocal line, bare
        if not bare and len(line) + 1 + len(piece) > _LINE:
            lines.append(line)
            line = ""
        line = f"{line} {piece}"
        bare = False

    def put_encoded(text: str) -> None:
        nonlocal line
        data = text.encode("utf-8")
        q_length = len(data) + 2 * len(data.translate(None, _Q_LITERAL))
        # The email package's choice: "q" (readable) unless base64 is clearly shorter.
        use_q = q_length - 4 * -(-len(data) // 3) < 5
        while data:
            room = min(_WORD, _LINE - len(line) - 1)
            if room < _EW_MIN_ROOM and not bare:
                lines.append(line)
                line = ""
                room = _WORD
            size = _q_size(data, room) if use_q else (room - _EW_OVERHEAD) // 4 * 3
            size = _char_boundary(data, size)
            chunk, data = data[:size], data[size:]
            if use_q:
                put("=?utf-8?q?" + "".join([_Q_BYTE[byte] for byte in chunk]) + "?=")
            else:
                put("=?utf-8?b?" + binascii.b2a_base64(chunk, newline=False).decode() + "?=")

    run: list[str] = []
    for word, encode in words:
        if encode:
            run.append(word)
            continue
        if run:
            put_encoded(" ".join(run))
            run = []
        if word:
            put(word)
    if run:
        put_encoded(" ".join(run))
    lines.append(line)
    return _CRLF.join(lines) + _CRLF


def _q_size(data: bytes, room: int) -> int:
    """How many leading bytes of `data` fit in a "q" encoded-word of `room` characters."""
    budget = room - _EW_OVERHEAD
    size = 0
    for byte in data:
        budget -= len(_Q_BYTE[byte])
        if budget < 0:
            break
        size += 1
    return size


def _char_boundary(data: bytes, size: int) -> int:
    """`size` moved back to the start of a UTF-8 character, or on past the first one."""
    if size >= len(data):
        return len(data)
    while size > 0 and data[size] & 0xC0 == 0x80:  # a continuation byte
        size -= 1
    if size <= 0:  # less room than one character: take the first one whole
        size = 1
        while size < len(data) and data[size] & 0xC0 == 0x80:
            size += 1
    return size


def _body(text: str) -> bytes:
    """`text` as quoted-printable with CRLF line ends, as `set_content` wrote it.

    Lines end in "\\n" (any CR or CRLF counts as one) and the text ends with one, so the
    reader gets back exactly what `EmailMessage.set_content` gave. `binascii.b2a_qp`
    encodes "=", non-ASCII and whitespace before a line end, and keeps lines within 76
    characters with soft breaks.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


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
    unsubscribe_mailto: str | None = None,
) -> tuple[ComposedMessage, str]:
    """A multipart/alternative (text, then HTML) message and its Message-ID.

    Headers in order: Date, From, To, [Reply-To], Subject, Message-ID, [List-Unsubscribe,
    List-Unsubscribe-Post], [extra headers], MIME-Version, Content-Type. Both parts are
    UTF-8 quoted-printable, so the message is 7-bit clean for servers without 8BITMIME.

    With `unsubscribe_url` (marketing mail) it carries the RFC 8058 one-click headers, so
    mail providers can offer an unsubscribe button that POSTs to that URL; with
    `unsubscribe_mailto` too, List-Unsubscribe also names that address (after the URL).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    message_id = new_message_id(message_id_domain)
    headers = [
        f"Date: {format_datetime(now)}{_CRLF}",
        _from_header("From", from_address, from_name),
        _mailbox_header("To", to_address, to_name),
    ]
    if reply_to:
        headers.append(_reply_to_header(reply_to))
    subject = clean_header_value(rendered.subject)
    headers.append(_fold("Subject", _unstructured_words("Subject", subject)))
    headers.append(f"Message-ID: {message_id}{_CRLF}")
    if unsubscribe_url is not None:
        if (
            not _UNSUBSCRIBE_URL.fullmatch(unsubscribe_url)
            or len(unsubscribe_url) > _MAX_UNSUBSCRIBE_URL
        ):
            raise ValueError(f"invalid unsubscribe URL {unsubscribe_url!r}")
        targets = f"<{unsubscribe_url}>"
        if unsubscribe_mailto is not None:
            if not _UNSUBSCRIBE_MAILTO.fullmatch(unsubscribe_mailto):
                raise ValueError(f"invalid unsubscribe mailto {unsubscribe_mailto!r}")
            if len(unsubscribe_url) + len(unsubscribe_mailto) + 4 <= _MAX_UNSUBSCRIBE_URL:
                targets += f", <{unsubscribe_mailto}>"
        # One line as it is: an encoded-word inside the URL would hide the button.
        headers.append(f"List-Unsubscribe: {targets}{_CRLF}")
        headers.append(f"List-Unsubscribe-Post: List-Unsubscribe=One-Click{_CRLF}")
    for name, value in (extra_headers or {}).items():
        if not _HEADER_NAME.fullmatch(name) or name.lower() in _RESERVED:
            raise ValueError(f"extra header {name!r} is not allowed")
        headers.append(_fold(name, _unstructured_words(name, clean_header_value(value))))
    # Quoted-printable never writes "=_" ("=" only starts "=XX" or a soft break), so no
    # body line can look like this boundary; the 128 random bits make it unguessable.
    boundary = f"=_{secrets.token_hex(16)}"
    headers.append(
        f"MIME-Version: 1.0{_CRLF}"
        f"Content-Type: multipart/alternative;{_CRLF}"
        f' boundary="{boundary}"{_CRLF}{_CRLF}'
    )
    delimiter = f"--{boundary}{_CRLF}".encode("ascii")
    # The CRLF before each delimiter belongs to it, hence the blank line after each body.
    raw = b"".join(
        [
            # ASCII but for an internationalised (RFC 6532) address, sent with SMTPUTF8.
            "".join(headers).encode("utf-8"),
            delimiter,
            _PART_HEADERS["plain"],
            _body(rendered.text),
            b"\r\n",
            delimiter,
            _PART_HEADERS["html"],
            _body(rendered.html),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ]
    )
    return ComposedMessage(raw=raw), message_id


def message_bytes(msg: ComposedMessage) -> bytes:
    """The message as sent over SMTP: CRLF line endings, long lines folded, all ASCII."""
    return msg.raw
