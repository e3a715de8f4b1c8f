"""What an SMTP failure means, judged by the stage of the dialogue that said it.

A 5xx is not "this address is dead" by itself: a rejected password (535 to AUTH) or a
refused sender (550 5.7.1 to MAIL FROM) says nothing about the recipient, and treating it so
would put every customer on the never-mail list. Only the recipient stages (RCPT TO, and the
reply after DATA, which is per recipient since we send one recipient per transaction) can
say a mailbox is gone, and only with an enhanced status code that means so (RFC 3463).
Pure: no I/O, used by the dispatcher and its tests.
"""

from __future__ import annotations

import enum
import re


class Stage(enum.StrEnum):
    """Where in the SMTP dialogue a reply (or its absence) came."""

    CONNECT = "connect"  # TCP, greeting, EHLO, STARTTLS, AUTH
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"


class Verdict(enum.StrEnum):
    # Our side (credentials, sender address, the server or the network): try the message
    # again later; a run of these pauses sending (app.mail.breaker).
    SENDER = "sender"
    # A 4xx about this message: try it again with backoff, counting the attempt.
    TRANSIENT = "transient"
    # The mailbox does not exist or is disabled: fail the message and suppress the address.
    MAILBOX_GONE = "hard_bounce"
    # Refused for policy, reputation, content or size: fail the message, keep the address.
    REJECTED = "rejected"


# "5.1.1", "4.7.0": the enhanced status code a reply's text starts with, if it has one.
_ENHANCED = re.compile(r"^\s*(?:\d{3}[ -])?([245])\.(\d{1,3})\.(\d{1,3})\b")

# 5.1.7 and 5.1.8 are about the sender's address (RFC 3463), not the recipient's.
_SENDER_ADDRESS_SUBJECTS = frozenset({7, 8})


def enhanced_code(text: str) -> tuple[int, int, int] | None:
    """The enhanced status code at the start of a reply's text, e.g. (5, 1, 1)."""
    found = _ENHANCED.match(text)
    if found is None:
        return None
    klass, subject, detail = found.groups()
    return int(klass), int(subject), int(detail)


def judge_reply(stage: Stage, code: int | None, text: str) -> Verdict:
    """What to do with a message whose delivery failed at `stage` with `code` and `text`.

    `code` is None when the server said nothing (refused connection, TLS failure, timeout).
    """
    enhanced = enhanced_code(text)
    if code is None:
        # Before MAIL FROM it is the way to the server; a drop in the middle of one message's
        # transaction counts as that message's try, so a message that always breaks the
        # connection cannot retry forever without using its attempts.
        return Verdict.SENDER if stage in (Stage.CONNECT, Stage.MAIL) else Verdict.TRANSIENT
    if code == 421:
        return Verdict.SENDER  # the server is closing the connection, whatever the stage
    if stage == Stage.MAIL and code >= 500 and (code == 552 or enhanced == (5, 3, 4)):
        return Verdict.REJECTED  # this message is too big (the SIZE we declared)
    if stage in (Stage.CONNECT, Stage.MAIL):
        return Verdict.SENDER
    if code < 500:
        return Verdict.TRANSIENT
    if enhanced is None or enhanced[0] != 5:
        # A bare 550 can mean "no such user" or "refused for policy" (RFC 5321 4.2.3):
        # without the enhanced code nobody can tell, so the address is kept.
        return Verdict.REJECTED
    _, subject, detail = enhanced
    if subject == 1 and detail not in _SENDER_ADDRESS_SUBJECTS:
        return Verdict.MAILBOX_GONE  # 5.1.1 bad mailbox, 5.1.2 bad domain, 5.1.10 null MX
    if (subject, detail) == (2, 1):
        return Verdict.MAILBOX_GONE  # mailbox disabled
    return Verdict.REJECTED
