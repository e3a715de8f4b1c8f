"""Person or machine: the class and reason of one open or click, from facts alone (no I/O).

Much of what "opens" mail is not a reader: Apple Mail Privacy Protection fetches every image
through its proxy when mail arrives, security gateways follow every link before the reader
sees the message, and some clients prefetch. Each event gets a class (`human`, `machine`,
`unknown`) and the reason for it, so stats can count people and still show what was dropped.

The checks run in the order of `classify`; the first that decides wins. docs/tracking.md
describes each one and the settings behind it.
"""

from __future__ import annotations

import bisect
import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

# Stored in tracking_events; defined with the other stored values (app/statuses.py).
from app.statuses import EventClass as EventClass
from app.statuses import EventKind as EventKind

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Apple's proxy sends this bare string and nothing else; no browser or mail client does.
_APPLE_PROXY_AGENT = re.compile(r"Mozilla/5\.0")
# What browsers and desktop mail clients send: "Mozilla/5.0 (platform) ..." or Outlook's own.
_BROWSER_AGENT = re.compile(r"Mozilla/\d+\.\d+ \(|Microsoft Office/|Outlook")


class Reason(enum.StrEnum):
    # machine
    HONEYPOT = "honeypot"  # the hidden link no reader can see
    HEAD_REQUEST = "head_request"  # scanners check links with HEAD; browsers follow with GET
    SCANNER_USER_AGENT = "scanner_user_agent"
    APPLE_PROXY = "apple_proxy"  # Mail Privacy Protection: Apple's agent from Apple's network
    CLICK_BURST = "click_burst"  # several links of one message within seconds
    SURVEY_BURST = "survey_burst"  # several scores of one message's survey within seconds
    PREFETCH = "prefetch"  # within seconds of sending: fetched on delivery, not read
    # human
    IMAGE_PROXY = "image_proxy"  # e.g. Gmail's GoogleImageProxy: fetches when the reader opens
    BROWSER = "browser"
    # unknown
    APPLE_AGENT_ELSEWHERE = "apple_agent_elsewhere"  # Apple's agent from an unlisted address
    NO_USER_AGENT = "no_user_agent"
    OTHER_USER_AGENT = "other_user_agent"


@dataclass(frozen=True)
class NetworkSet:
    """CIDR networks, searched by bisection: Apple's published egress list is long."""

    _starts: tuple[int, ...]
    _ends: tuple[int, ...]

    @classmethod
    def parse(cls, cidrs: Iterable[str]) -> NetworkSet:
        spans = sorted(_span(ipaddress.ip_network(cidr.strip(), strict=False)) for cidr in cidrs)
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return cls(tuple(start for start, _ in merged), tuple(end for _, end in merged))

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        key = _key(address)
        index = bisect.bisect_right(self._starts, key) - 1
        return index >= 0 and key <= self._ends[index]


def _key(address: IpAddress) -> int:
    # IPv4 and IPv6 share one sorted line: IPv6 is shifted above every IPv4 value.
    return int(address) + (1 << 32 if address.version == 6 else 0)


def _span(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    return _key(network.network_address), _key(network.broadcast_address)


@lru_cache(maxsize=8)
def network_set(cidrs: tuple[str, ...]) -> NetworkSet:
    """The parsed set for a settings value, parsed once per process."""
    return NetworkSet.parse(cidrs)


@dataclass(frozen=True)
class Thresholds:
    """The settings classification depends on (AFTERSALE_TRACKING_*)."""

    apple_proxy_networks: NetworkSet
    scanner_user_agents: tuple[str, ...]  # lower-cased substrings
    image_proxy_user_agents: tuple[str, ...]  # lower-cased substrings
    prefetch_seconds: float
    burst_links: int
    burst_seconds: float


@dataclass(frozen=True)
class EventFacts:
    kind: EventKind
    method: str
    user_agent: str
    ip: IpAddress | None
    # Since the message was sent; None when unknown.
    seconds_since_sent: float | None
    honeypot: bool = False
    # Other links of the same message clicked within `burst_seconds` before this click.
    other_links_clicked_recently: int = 0
    # Other scores of the same message's survey answered within `burst_seconds` before.
    other_scores_answered_recently: int = 0


def classify(facts: EventFacts, thresholds: Thresholds) -> tuple[EventClass, Reason]:
    agent = facts.user_agent.strip()
    lowered = agent.lower()
    is_open = facts.kind == EventKind.OPEN
    if facts.kind == EventKind.CLICK and facts.honeypot:
        return EventClass.MACHINE, Reason.HONEYPOT
    if facts.method.upper() == "HEAD":
        return EventClass.MACHINE, Reason.HEAD_REQUEST
    # Before the scanner list, so a broad scanner entry cannot swallow Gmail's real opens.
    if is_open and _contains_any(lowered, thresholds.image_proxy_user_agents):
        return EventClass.HUMAN, Reason.IMAGE_PROXY
    if _contains_any(lowered, thresholds.scanner_user_agents):
        return EventClass.MACHINE, Reason.SCANNER_USER_AGENT
    apple_agent = _APPLE_PROXY_AGENT.fullmatch(agent) is not None
    if is_open and apple_agent and facts.ip in thresholds.apple_proxy_networks:
        return EventClass.MACHINE, Reason.APPLE_PROXY
    if facts.kind == EventKind.CLICK and is_click_burst(
        facts.other_links_clicked_recently, thresholds
    ):
        return EventClass.MACHINE, Reason.CLICK_BURST
    # A person picks one score (maybe corrects it once); a scanner follows all eleven.
    if facts.kind == EventKind.ANSWER and is_click_burst(
        facts.other_scores_answered_recently, thresholds
    ):
        return EventClass.MACHINE, Reason.SURVEY_BURST
    if facts.seconds_since_sent is not None and facts.seconds_since_sent < (
        thresholds.prefetch_seconds
    ):
        return EventClass.MACHINE, Reason.PREFETCH
    if apple_agent:
        # Likely Apple's proxy from a range the configured list lacks, but not proven.
        return EventClass.UNKNOWN, Reason.APPLE_AGENT_ELSEWHERE
    if not agent:
        return EventClass.UNKNOWN, Reason.NO_USER_AGENT
    if _BROWSER_AGENT.match(agent):
        return EventClass.HUMAN, Reason.BROWSER
    return EventClass.UNKNOWN, Reason.OTHER_USER_AGENT


def is_click_burst(other_links_clicked_recently: int, thresholds: Thresholds) -> bool:
    """A click that, with the other links of its message clicked just before, makes a burst."""
    return other_links_clicked_recently + 1 >= thresholds.burst_links


def _contains_any(text: str, needles: tuple[str, ...]) -> bool:
    return any(needle and needle in text for needle in needles)
