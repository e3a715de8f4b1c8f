"""Settings, read from the environment (prefix AFTERSALE_) and an optional .env file."""

from __future__ import annotations

import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent

# Defaults that make `make run` work on a fresh clone. Production refuses every one of them.
DEV_SECRET_KEY = "dev-secret-key-change-me"  # noqa: S105 (refused in production)
DEV_WEBHOOK_SECRET = "dev-webhook-secret"  # noqa: S105 (refused in production)
DEV_API_KEY = "dev-api-key"
DEV_UNSUBSCRIBE_SECRET = "dev-unsubscribe-secret"  # noqa: S105 (refused in production)
DEV_SHOPIFY_SECRET = "dev-shopify-secret"  # noqa: S105 (refused in production)
DEV_WOOCOMMERCE_SECRET = "dev-woocommerce-secret"  # noqa: S105 (refused in production)
_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "placeholder", "xxx", "todo"}
_MIN_SECRET_LENGTH = 16


class ConfigError(ValueError):
    """Raised when settings cannot run the service; the message names the setting."""


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


def parse_smtp_url(url: str) -> SmtpConfig:
    """Parse `smtp[s]://user:pass@host:port?starttls=auto|require|off&pool_size=N&timeout=S`."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigError(f"AFTERSALE_SMTP_URL: scheme must be smtp or smtps, not {parts.scheme!r}")
    if not parts.hostname:
        raise ConfigError("AFTERSALE_SMTP_URL: a host is required")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls", "pool_size", "timeout"}
    if unknown:
        raise ConfigError(f"AFTERSALE_SMTP_URL: unknown option(s) {', '.join(sorted(unknown))}")
    starttls_option = query.get("starttls", "auto")
    starttls_values: dict[str, bool | None] = {"auto": None, "require": True, "off": False}
    if starttls_option not in starttls_values:
        raise ConfigError("AFTERSALE_SMTP_URL: starttls must be auto, require or off")
    implicit_tls = parts.scheme == "smtps"
    try:
        pool_size = int(query.get("pool_size", "4"))
        timeout = float(query.get("timeout", "30"))
        port = parts.port or (465 if implicit_tls else 25)
    except ValueError as exc:
        raise ConfigError(f"AFTERSALE_SMTP_URL: {exc}") from exc
    if not 1 <= pool_size <= 100:
        raise ConfigError("AFTERSALE_SMTP_URL: pool_size must be between 1 and 100")
    if timeout <= 0:
        raise ConfigError("AFTERSALE_SMTP_URL: timeout must be positive")
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


# A shop's host name: what `host=secret` entries are keyed by (a bare secret has no host).
_HOST = re.compile(r"^(localhost|[a-z0-9-]+(\.[a-z0-9-]+)+)$")


def normalize_host(value: str | None) -> str | None:
    """The lower-cased host name, or None when `value` is not one."""
    host = (value or "").strip().lower()
    return host if _HOST.match(host) else None


def split_secret_entry(entry: str) -> tuple[str | None, str]:
    """`host=secret` -> (host, secret); a bare secret, even one with `=` in it -> (None, secret)."""
    host, separator, secret = entry.partition("=")
    if separator and normalize_host(host) is not None:
        return normalize_host(host), secret.strip()
    return None, entry.strip()


def secrets_for_host(entries: Sequence[str], host: str | None) -> list[str]:
    """The secrets that may sign a delivery from `host`: its own and the ones for every shop."""
    wanted = normalize_host(host)
    secrets = []
    for entry in entries:
        entry_host, secret = split_secret_entry(entry)
        if entry_host is None or entry_host == wanted:
            secrets.append(secret)
    return secrets


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AFTERSALE_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    env: Literal["development", "production"] = "development"
    database_url: str = f"sqlite+aiosqlite:///{ROOT / 'var' / 'aftersale.db'}"
    smtp_url: str | None = None
    # Built-in SMTP capture for development when no SMTP_URL is given.
    dev_smtp_host: str = "127.0.0.1"
    dev_smtp_port: int = 2525
    dev_outbox_dir: Path = ROOT / "var" / "outbox"

    public_url: str = "http://127.0.0.1:8000"
    secret_key: str = DEV_SECRET_KEY
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [DEV_API_KEY])
    webhook_secret: str = DEV_WEBHOOK_SECRET
    shopify_secret: str | None = None
    woocommerce_secret: str | None = None
    # Sign the one-click unsubscribe links of marketing mail (RFC 8058). Comma-separated: new
    # links are signed with the first, links signed with any of them keep working, so a key
    # is rotated by putting a new one first. Dropping a secret breaks the links it signed.
    unsubscribe_secrets: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [DEV_UNSUBSCRIBE_SECRET], min_length=1
    )
    # Shopify and WooCommerce webhooks. Comma-separated `secret` (any shop) or `host=secret`
    # (the Shopify shop domain, or the host of WooCommerce's X-WC-Webhook-Source); several per
    # shop while one is rotated. Empty: that platform's deliveries are refused (development
    # fills in a dev secret). WooCommerce has no consent field: an order meta entry with this
    # key and a yes/1/true value gives marketing consent.
    shopify_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    woocommerce_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    woocommerce_consent_meta_key: str = Field(default="aftersale_marketing_consent", min_length=1)

    rules_dir: Path = ROOT / "rules"
    templates_dir: Path = ROOT / "templates" / "email"
    mail_from: str = Field(
        default="Aftersale Shop <shop@example.com>",
        validation_alias="AFTERSALE_FROM",
    )
    reply_to: str | None = None
    default_time_zone: str = "UTC"
    default_locale: str = "en"

    rules_poll_interval: float = Field(default=2.0, gt=0)
    dispatch_interval: float = Field(default=5.0, gt=0)
    dispatch_batch_size: int = Field(default=100, ge=1, le=10_000)
    # A worker that claimed a message must finish it within the lease, or another worker takes it.
    lease_seconds: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    retry_base_seconds: float = Field(default=60.0, gt=0)
    retry_max_seconds: float = Field(default=6 * 3600.0, gt=0)

    @field_validator(
        "api_keys", "unsubscribe_secrets", "shopify_secrets", "woocommerce_secrets", mode="before"
    )
    @classmethod
    def _split_comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("shopify_secrets", "woocommerce_secrets")
    @classmethod
    def _secret_entries(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            host, secret = split_secret_entry(entry)
            if not secret:
                raise ValueError(f"no secret after {host}=")
        return entries

    @model_validator(mode="after")
    def _development_platform_secrets(self) -> Settings:
        if self.env == "development":
            self.shopify_secrets = self.shopify_secrets or [DEV_SHOPIFY_SECRET]
            self.woocommerce_secrets = self.woocommerce_secrets or [DEV_WOOCOMMERCE_SECRET]
        return self

    @field_validator("default_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        try:
            Locale.parse(value, sep="-" if "-" in value else "_")
        except (UnknownLocaleError, ValueError) as exc:
            raise ValueError(f"unknown locale {value!r}") from exc
        return value

    @field_validator("mail_from")
    @classmethod
    def _valid_from(cls, value: str) -> str:
        _, address = email.utils.parseaddr(value)
        if "@" not in address:
            raise ValueError(f"AFTERSALE_FROM needs an address, got {value!r}")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _valid_smtp_url(cls, value: str | None) -> str | None:
        if value:
            parse_smtp_url(value)
        return value or None

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.env != "production":
            return self
        secrets = {
            "AFTERSALE_SECRET_KEY": self.secret_key,
            "AFTERSALE_WEBHOOK_SECRET": self.webhook_secret,
        }
        for index, key in enumerate(self.api_keys):
            secrets[f"AFTERSALE_API_KEYS (key {index + 1})"] = key
        for index, key in enumerate(self.unsubscribe_secrets):
            secrets[f"AFTERSALE_UNSUBSCRIBE_SECRETS (secret {index + 1})"] = key
        for name, entries in (
            ("AFTERSALE_SHOPIFY_SECRETS", self.shopify_secrets),
            ("AFTERSALE_WOOCOMMERCE_SECRETS", self.woocommerce_secrets),
        ):
            for index, entry in enumerate(entries):
                secrets[f"{name} (secret {index + 1})"] = split_secret_entry(entry)[1]
        if self.shopify_secret is not None:
            secrets["AFTERSALE_SHOPIFY_SECRET"] = self.shopify_secret
        if self.woocommerce_secret is not None:
            secrets["AFTERSALE_WOOCOMMERCE_SECRET"] = self.woocommerce_secret
        problems = [name for name, value in secrets.items() if _is_placeholder(value)]
        if not self.api_keys:
            problems.append("AFTERSALE_API_KEYS (none set)")
        if not self.smtp_url:
            problems.append("AFTERSALE_SMTP_URL (required in production)")
        if problems:
            raise ConfigError(
                "refusing to start in production with missing or placeholder settings: "
                + ", ".join(problems)
                + f" (secrets need at least {_MIN_SECRET_LENGTH} characters and no dev default)"
            )
        return self

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    @cached_property
    def smtp(self) -> SmtpConfig:
        """The SMTP server to send through; the built-in capture when none is configured."""
        if self.smtp_url:
            return parse_smtp_url(self.smtp_url)
        return parse_smtp_url(
            f"smtp://{self.dev_smtp_host}:{self.dev_smtp_port}?starttls=off&pool_size=2"
        )

    @property
    def uses_dev_smtp_capture(self) -> bool:
        return self.is_development and not self.smtp_url

    @property
    def from_address(self) -> tuple[str, str]:
        """(display name, address) of the sender."""
        return email.utils.parseaddr(self.mail_from)


def _is_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return (
        lowered in _PLACEHOLDERS
        or lowered.startswith("dev-")
        or "change-me" in lowered
        or "changeme" in lowered
        or len(value) < _MIN_SECRET_LENGTH
    )
