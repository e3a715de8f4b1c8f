"""The SMTP server mail goes through, as SMTP_URL and the SMTP_*RATE* settings give it.

Pure: app/config.py checks these settings with it at start-up and app/mail/sender.py sends
with the `SmtpConfig` it makes. Errors are ValueErrors that name the setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from app.mail.addresses import dns_domain


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool
    # None: STARTTLS when the server offers it; True: required; False: never.
    starttls: bool | None
    pool_size: int
    timeout: float
    # Sending pace of one process; 0 is unlimited. Domains are lower-case ASCII (IDNA).
    rate_per_second: float = 0
    domain_rate_per_minute: float = 0
    domain_rates_per_minute: Mapping[str, float] = dataclasses.field(default_factory=dict)


def parse_smtp_url(url: str) -> SmtpConfig:
    """Parse `smtp[s]://user:pass@host:port?starttls=auto|require|off&pool_size=N&timeout=S`."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"AFTERSALE_SMTP_URL: scheme must be smtp or smtps, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("AFTERSALE_SMTP_URL: a host is required")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls", "pool_size", "timeout"}
    if unknown:
        raise ValueError(f"AFTERSALE_SMTP_URL: unknown option(s) {', '.join(sorted(unknown))}")
    starttls_option = query.get("starttls", "auto")
    starttls_values: dict[str, bool | None] = {"auto": None, "require": True, "off": False}
    if starttls_option not in starttls_values:
        raise ValueError("AFTERSALE_SMTP_URL: starttls must be auto, require or off")
    implicit_tls = parts.scheme == "smtps"
    try:
        pool_size = int(query.get("pool_size", "4"))
        timeout = float(query.get("timeout", "30"))
        port = parts.port or (465 if implicit_tls else 25)
    except ValueError as exc:
        raise ValueError(f"AFTERSALE_SMTP_URL: {exc}") from exc
    if not 1 <= pool_size <= 100:
        raise ValueError("AFTERSALE_SMTP_URL: pool_size must be between 1 and 100")
    if timeout <= 0:
        raise ValueError("AFTERSALE_SMTP_URL: timeout must be positive")
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit_tls,
        starttls=False if implicit_tls else starttls_values[starttls_option],
        pool_size=pool_size,
        timeout=timeout,
    )


def parse_domain_rates(value: str) -> dict[str, float]:
    """`gmail.com=60,yahoo.com=30` -> {"gmail.com": 60.0, "yahoo.com": 30.0}."""
    rates: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        domain, separator, rate = entry.partition("=")
        if not separator:
            raise ValueError(f"{entry!r}: use domain=messages_per_minute, e.g. gmail.com=60")
        try:
            number = float(rate)
        except ValueError as exc:
            raise ValueError(f"{entry!r}: {rate.strip()!r} is not a number") from exc
        rates[dns_domain(domain)] = checked_rate(repr(entry), number)
    return rates


def checked_rate(name: str, rate: float) -> float:
    """`rate` when it is a pace (messages per minute, 0 unlimited); ValueError otherwise."""
    if not 0 <= rate < float("inf"):
        raise ValueError(f"{name}: the rate must be a number >= 0 (0 is unlimited)")
    return rate
