"""Person or machine, decided from facts alone: one table of cases, one row per reason."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from app.config import Settings
from app.tracking.classify import (
    EventClass,
    EventFacts,
    EventKind,
    NetworkSet,
    Reason,
    classify,
)
from app.tracking.service import anonymised_network, classify_thresholds, parse_ip

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
THRESHOLDS = classify_thresholds(SETTINGS)

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
APPLE_PROXY = "Mozilla/5.0"
APPLE_IP = ipaddress.ip_address("17.58.100.7")
HOME_IP = ipaddress.ip_address("198.51.100.23")

OPEN = EventFacts(
    kind=EventKind.OPEN, method="GET", user_agent=CHROME, ip=HOME_IP, seconds_since_sent=3600
)
CLICK = replace(OPEN, kind=EventKind.CLICK)

CASES: list[tuple[str, EventFacts, EventClass, Reason]] = [
    # people
    ("browser open", OPEN, EventClass.HUMAN, Reason.BROWSER),
    ("browser click", CLICK, EventClass.HUMAN, Reason.BROWSER),
    ("phone click", replace(CLICK, user_agent=IPHONE_SAFARI), EventClass.HUMAN, Reason.BROWSER),
    ("outlook open", replace(OPEN, user_agent=OUTLOOK), EventClass.HUMAN, Reason.BROWSER),
    (
        "gmail proxy opens for the reader",
        replace(OPEN, user_agent=GMAIL_PROXY, ip=ipaddress.ip_address("66.249.84.1")),
        EventClass.HUMAN,
        Reason.IMAGE_PROXY,
    ),
    (
        "gmail proxy, even right after delivery",
        replace(OPEN, user_agent=GMAIL_PROXY, seconds_since_sent=2),
        EventClass.HUMAN,
        Reason.IMAGE_PROXY,
    ),
    (
        "private relay user browsing from Apple's range",
        replace(CLICK, user_agent=IPHONE_SAFARI, ip=APPLE_IP),
        EventClass.HUMAN,
        Reason.BROWSER,
    ),
    (
        "two links clicked in a row is still a reader",
        replace(CLICK, other_links_clicked_recently=1),
        EventClass.HUMAN,
        Reason.BROWSER,
    ),
    # machines
    ("honeypot", replace(CLICK, honeypot=True), EventClass.MACHINE, Reason.HONEYPOT),
    (
        "honeypot beats a browser agent and HEAD",
        replace(CLICK, honeypot=True, method="HEAD"),
        EventClass.MACHINE,
        Reason.HONEYPOT,
    ),
    ("HEAD click", replace(CLICK, method="HEAD"), EventClass.MACHINE, Reason.HEAD_REQUEST),
    ("HEAD open", replace(OPEN, method="head"), EventClass.MACHINE, Reason.HEAD_REQUEST),
    (
        "apple proxy: its agent from its network",
        replace(OPEN, user_agent=APPLE_PROXY, ip=APPLE_IP),
        EventClass.MACHINE,
        Reason.APPLE_PROXY,
    ),
    (
        "apple proxy long after delivery is still the proxy",
        replace(OPEN, user_agent=APPLE_PROXY, ip=APPLE_IP, seconds_since_sent=86400),
        EventClass.MACHINE,
        Reason.APPLE_PROXY,
    ),
    (
        "scanner agent",
        replace(CLICK, user_agent="Mozilla/5.0 (compatible; Barracuda Sentinel)"),
        EventClass.MACHINE,
        Reason.SCANNER_USER_AGENT,
    ),
    (
        "a bot",
        replace(OPEN, user_agent="Mozilla/5.0 (compatible; Googlebot/2.1)"),
        EventClass.MACHINE,
        Reason.SCANNER_USER_AGENT,
    ),
    (
        "a script",
        replace(CLICK, user_agent="python-requests/2.32.3"),
        EventClass.MACHINE,
        Reason.SCANNER_USER_AGENT,
    ),
    (
        "third link within the burst window",
        replace(CLICK, other_links_clicked_recently=2),
        EventClass.MACHINE,
        Reason.CLICK_BURST,
    ),
    (
        "open on delivery",
        replace(OPEN, seconds_since_sent=3),
        EventClass.MACHINE,
        Reason.PREFETCH,
    ),
    (
        "click on delivery",
        replace(CLICK, seconds_since_sent=0),
        EventClass.MACHINE,
        Reason.PREFETCH,
    ),
    # not sure
    (
        "apple's agent from an unlisted address",
        replace(OPEN, user_agent=APPLE_PROXY),
        EventClass.UNKNOWN,
        Reason.APPLE_AGENT_ELSEWHERE,
    ),
    ("no user agent", replace(OPEN, user_agent="  "), EventClass.UNKNOWN, Reason.NO_USER_AGENT),
    (
        "something else",
        replace(CLICK, user_agent="SomeMailApp/3.1"),
        EventClass.UNKNOWN,
        Reason.OTHER_USER_AGENT,
    ),
    (
        "no address, no send time: the agent decides",
        replace(OPEN, ip=None, seconds_since_sent=None),
        EventClass.HUMAN,
        Reason.BROWSER,
    ),
]


@pytest.mark.parametrize(
    ("facts", "expected_class", "expected_reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_classification(
    facts: EventFacts, expected_class: EventClass, expected_reason: Reason
) -> None:
    assert classify(facts, THRESHOLDS) == (expected_class, expected_reason)


def test_thresholds_come_from_settings() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        tracking_prefetch_seconds=0,
        tracking_burst_links=5,
        tracking_apple_proxy_networks="198.51.100.0/24",
        tracking_scanner_user_agents="SomeMailApp",
        tracking_image_proxy_user_agents="",
    )
    thresholds = classify_thresholds(settings)
    assert classify(replace(OPEN, seconds_since_sent=0), thresholds)[1] == Reason.BROWSER
    assert classify(replace(CLICK, other_links_clicked_recently=3), thresholds)[1] == (
        Reason.BROWSER
    )
    assert classify(replace(OPEN, user_agent=APPLE_PROXY), thresholds)[1] == Reason.APPLE_PROXY
    assert classify(replace(CLICK, user_agent="SomeMailApp/3.1"), thresholds)[1] == (
        Reason.SCANNER_USER_AGENT
    )
    assert classify(replace(OPEN, user_agent=GMAIL_PROXY), thresholds)[1] == Reason.BROWSER


def test_network_set() -> None:
    networks = NetworkSet.parse(["17.0.0.0/8", "2a02:26f7::/32", "10.0.0.0/24", "10.0.0.128/25"])
    assert ipaddress.ip_address("17.255.255.255") in networks
    assert ipaddress.ip_address("18.0.0.0") not in networks
    assert ipaddress.ip_address("16.255.255.255") not in networks
    assert ipaddress.ip_address("10.0.0.200") in networks
    assert ipaddress.ip_address("2a02:26f7:1::1") in networks
    assert ipaddress.ip_address("2a02:26f8::1") not in networks
    # An IPv6 address whose low bits equal an IPv4 range is not in it.
    assert ipaddress.ip_address("::1100:1") not in networks
    assert None not in networks
    assert ipaddress.ip_address("17.0.0.1") not in NetworkSet.parse([])


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
        ("testclient", None),
        (None, None),
    ],
)
def test_addresses_are_stored_as_their_network_only(given: str | None, stored: str | None) -> None:
    assert anonymised_network(parse_ip(given)) == stored
