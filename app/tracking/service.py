"""Tracking: give a message its tracked links before it is sent; record opens and clicks.

Services flush and never commit; `track_message` is the dispatcher's step, and the links it
stores are committed before the mail is sent, because they must exist before it is read.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.mail.templates import RenderedEmail
from app.models import TrackedLinkKind
from app.ops.metrics import count_tracking_event
from app.rules.model import Rule
from app.runtime import Runtime
from app.tracking import repository
from app.tracking.classify import (
    EventFacts,
    EventKind,
    IpAddress,
    Thresholds,
    classify,
    is_click_burst,
    network_set,
)
from app.tracking.repository import LinkTarget, NewLink
from app.tracking.rewrite import find_links, rewrite
from app.tracking.tokens import TokenUse, make_token, new_nonce, read_token

# Stores a message's links before it is sent; their ids, in the order given.
StoreLinks = Callable[[Sequence[NewLink]], Awaitable[list[int]]]

# Enough of a user agent to classify and to read; real ones are far shorter.
MAX_USER_AGENT = 512
_IPV4_PREFIX = 24
_IPV6_PREFIX = 48


def tracking_applies(settings: Settings, rule: Rule | None) -> bool:
    return settings.tracking_enabled and (rule is None or rule.track)


async def track_message(
    runtime: Runtime,
    *,
    rule: Rule | None,
    rendered: RenderedEmail,
    unsubscribe_url: str | None,
    store: StoreLinks,
) -> RenderedEmail:
    """The rendered email as it should be sent: tracked, unless tracking is off for it.

    `store` saves the message's links (`repository.add_links`, in the dispatcher's shared
    transaction) and returns their ids.
    """
    if not tracking_applies(runtime.settings, rule):
        return rendered
    return await add_tracking(
        store,
        rendered=rendered,
        unsubscribe_url=unsubscribe_url,
        settings=runtime.settings,
        now=runtime.clock.now(),
    )


def own_link_prefixes(public_url: str) -> tuple[str, ...]:
    """Our own links, never rewritten: unsubscribe, pixel, click, survey answers and product
    reviews (an answer is recorded and classified at `/s/` or `/r/` itself, and must not
    count twice)."""
    base = public_url.rstrip("/")
    return tuple(f"{base}/{path}/" for path in ("u", "o", "c", "s", "r"))


async def add_tracking(
    store: StoreLinks,
    *,
    rendered: RenderedEmail,
    unsubscribe_url: str | None,
    settings: Settings,
    now: datetime,
) -> RenderedEmail:
    """Store the message's links, then point them at `/c/`; add the honeypot and the pixel.

    The unsubscribe link is never rewritten: it must work without us, and a one-click
    unsubscribe must not count as engagement. Nor are survey links (`own_link_prefixes`).
    """
    base = settings.public_url.rstrip("/")
    links = find_links(
        rendered.html,
        rendered.text,
        untouched={unsubscribe_url} if unsubscribe_url else set(),
        untouched_prefixes=own_link_prefixes(base),
    )
    entries = [
        NewLink(position, TrackedLinkKind.LINK, link.url, new_nonce().hex())
        for position, link in enumerate(links)
    ]
    honeypot = NewLink(len(entries), TrackedLinkKind.HONEYPOT, None, new_nonce().hex())
    pixel = NewLink(len(entries) + 1, TrackedLinkKind.PIXEL, None, new_nonce().hex())
    ids = await store([*entries, honeypot, pixel])

    def url(use: TokenUse, entry: NewLink, link_id: int) -> str:
        token = make_token(
            use=use,
            link_id=link_id,
            nonce=bytes.fromhex(entry.nonce),
            issued_at=now,
            secrets=settings.tracking_secrets,
        )
        return f"{base}/{use.value}/{token}"

    link_ids = ids[: len(entries)]
    targets = [
        url(TokenUse.CLICK, entry, id_) for entry, id_ in zip(entries, link_ids, strict=True)
    ]
    html, text = rewrite(
        rendered.html,
        rendered.text,
        links,
        targets,
        pixel_url=url(TokenUse.OPEN, pixel, ids[-1]),
        honeypot_url=url(TokenUse.CLICK, honeypot, ids[-2]),
    )
    return dataclasses.replace(rendered, html=html, text=text)


@dataclass(frozen=True)
class Visit:
    """One request to a tracking link, as the server saw it."""

    method: str
    user_agent: str
    ip: str | None


@dataclass(frozen=True)
class Click:
    """Where a valid click goes: the link's URL, or nowhere for the honeypot."""

    url: str | None


async def record_open(
    session: AsyncSession, *, token: str, visit: Visit, settings: Settings, now: datetime
) -> bool:
    """Store the open a pixel token names; False (nothing stored) for an invalid token."""
    target = await _target(session, token, TokenUse.OPEN, settings=settings, now=now)
    if target is None or target.kind != TrackedLinkKind.PIXEL:
        return False
    facts = _facts(EventKind.OPEN, visit, target, now=now)
    await _add_event(session, facts, target, link_id=None, settings=settings, now=now)
    return True


async def record_click(
    session: AsyncSession, *, token: str, visit: Visit, settings: Settings, now: datetime
) -> Click | None:
    """Store the click a link token names and say where it goes; None for an invalid token.

    A burst is found after the insert: by then clicks on the same message wait for each
    other (the message row lock on PostgreSQL, the write lock on SQLite), so even
    parallel scanner requests see one another.
    """
    target = await _target(session, token, TokenUse.CLICK, settings=settings, now=now, lock=True)
    if target is None or target.kind not in (TrackedLinkKind.LINK, TrackedLinkKind.HONEYPOT):
        return None
    honeypot = target.kind == TrackedLinkKind.HONEYPOT
    facts = dataclasses.replace(_facts(EventKind.CLICK, visit, target, now=now), honeypot=honeypot)
    await _add_event(session, facts, target, link_id=target.id, settings=settings, now=now)
    thresholds = classify_thresholds(settings)
    since = now - timedelta(seconds=thresholds.burst_seconds)
    others = await repository.other_links_clicked_since(
        session, message_id=target.message_id, link_id=target.id, since=since
    )
    if is_click_burst(others, thresholds):
        await repository.mark_click_burst(session, message_id=target.message_id, since=since)
    return Click(url=None if honeypot else target.url)


def classify_thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        apple_proxy_networks=network_set(tuple(settings.tracking_apple_proxy_networks)),
        scanner_user_agents=tuple(settings.tracking_scanner_user_agents),
        image_proxy_user_agents=tuple(settings.tracking_image_proxy_user_agents),
        prefetch_seconds=settings.tracking_prefetch_seconds,
        burst_links=settings.tracking_burst_links,
        burst_seconds=settings.tracking_burst_seconds,
    )


def parse_ip(value: str | None) -> IpAddress | None:
    """The client address, IPv4-mapped IPv6 as the IPv4 it is; None if it is no address."""
    try:
        address = ipaddress.ip_address(value or "")
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def anonymised_network(address: IpAddress | None) -> str | None:
    """What is stored of an address: its /24 (IPv4) or /48 (IPv6), never the address."""
    if address is None:
        return None
    prefix = _IPV4_PREFIX if address.version == 4 else _IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


async def _target(
    session: AsyncSession,
    token: str,
    use: TokenUse,
    *,
    settings: Settings,
    now: datetime,
    lock: bool = False,
) -> LinkTarget | None:
    claims = read_token(
        token,
        use=use,
        secrets=settings.tracking_secrets,
        now=now,
        max_age=timedelta(days=settings.tracking_link_days),
    )
    if claims is None:
        return None
    # The token's age is the message's: tokens are made as the message is sent.
    target = await repository.get_link_target(session, claims.link_id, lock_message=lock)
    if target is None or not _same_nonce(target.nonce, claims.nonce):
        return None
    return target


def _same_nonce(stored: str, given: bytes) -> bool:
    return hmac.compare_digest(stored.encode(), given.hex().encode())


def _facts(kind: EventKind, visit: Visit, target: LinkTarget, *, now: datetime) -> EventFacts:
    # Not sent yet means the send is in flight: a scanner reached the link before the
    # dispatcher recorded it, so the link's creation stands in for the send time.
    sent = target.sent_at or target.created_at
    return EventFacts(
        kind=kind,
        method=visit.method.upper(),
        user_agent=visit.user_agent[:MAX_USER_AGENT],
        ip=parse_ip(visit.ip),
        seconds_since_sent=max(0.0, (now - sent).total_seconds()),
    )


async def _add_event(
    session: AsyncSession,
    facts: EventFacts,
    target: LinkTarget,
    *,
    link_id: int | None,
    settings: Settings,
    now: datetime,
) -> None:
    event_class, reason = classify(facts, classify_thresholds(settings))
    await repository.add_event(
        session,
        message_id=target.message_id,
        kind=facts.kind,
        link_id=link_id,
        occurred_at=now,
        event_class=event_class,
        reason=reason,
        user_agent=facts.user_agent.strip() or None,
        ip=anonymised_network(facts.ip),
        method=facts.method[:8],
    )
    count_tracking_event(facts.kind.value, event_class.value)
