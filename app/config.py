"""Settings, read from the environment (prefix AFTERSALE_) and an optional .env file.

The fields are flat (each is one environment variable) and grouped by section below. What
parses a setting lives beside the code that uses it, in a pure module that imports nothing
of ours back (app/mail/smtp_url.py, app/mail/dkim_key.py, app/shops.py, ...), so this
module is in no import cycle.
"""

from __future__ import annotations

import dataclasses
import email.utils
import ipaddress
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.db import DEFAULT_POOL_SIZE
from app.listen import DEFAULT_HOST, DEFAULT_PORT, HOST_VARIABLES, PORT_VARIABLES, local_url
from app.mail.addresses import bounce_address, dns_domain, is_reserved_domain
from app.mail.dkim_key import DkimConfig, dkim_config, dkim_selector
from app.mail.smtp_url import SmtpConfig, checked_rate, parse_domain_rates, parse_smtp_url
from app.rules.bounds import Bounds
from app.rules.durations import parse_fixed_span
from app.shops import (
    check_reorder_template,
    check_secret_entries,
    parse_shop_urls,
    split_secret_entry,
    web_url,
)

ROOT = Path(__file__).resolve().parent.parent

# Defaults that make `make run` work on a fresh clone. Production refuses every one of them.
DEV_SECRET_KEY = "dev-secret-key-change-me"  # noqa: S105 (refused in production)
DEV_WEBHOOK_SECRET = "dev-webhook-secret"  # noqa: S105 (refused in production)
DEV_API_KEY = "dev-api-key"
DEV_UNSUBSCRIBE_SECRET = "dev-unsubscribe-secret"  # noqa: S105 (refused in production)
DEV_SHOPIFY_SECRET = "dev-shopify-secret"  # noqa: S105 (refused in production)
DEV_WOOCOMMERCE_SECRET = "dev-woocommerce-secret"  # noqa: S105 (refused in production)
DEV_TRACKING_SECRET = "dev-tracking-secret"  # noqa: S105 (refused in production)
DEV_SESSION_SECRET = "dev-session-secret"  # noqa: S105 (refused in production)
DEV_SURVEY_SECRET = "dev-survey-secret"  # noqa: S105 (refused in production)
# Apple's own address block, a sample of where Mail Privacy Protection fetches from; load
# Apple's published Private Relay egress list for real use (docs/tracking.md).
DEFAULT_APPLE_PROXY_NETWORKS = ("17.0.0.0/8",)
# Case-insensitive parts of the user agents of link scanners, security gateways and bots.
DEFAULT_SCANNER_USER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "messagelabs",
    "symantec",
    "trendmicro",
    "sophos",
    "forcepoint",
    "fireeye",
    "ironport",
    "zscaler",
    "cloudmark",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "java/",
    "curl/",
    "wget/",
    "libwww-perl",
    "okhttp",
    "bot/",
    "bot;",
    "spider",
    "crawler",
)
# Image proxies that fetch when the reader opens the mail, so their opens are people's.
DEFAULT_IMAGE_PROXY_USER_AGENTS = ("googleimageproxy",)
_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "placeholder", "xxx", "todo"}
_MIN_SECRET_LENGTH = 16


class ConfigError(ValueError):
    """Raised when settings cannot run the service; the message names the setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AFTERSALE_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    # --- The service: environment, database, API and dashboard access -------------------------
    env: Literal["development", "production"] = "development"
    database_url: str = f"sqlite+aiosqlite:///{ROOT / 'var' / 'aftersale.db'}"
    # PostgreSQL connections each process keeps open, and at most uses (docs/deployment.md:
    # the sum over all processes must stay under the server's max_connections).
    database_pool_size: int = Field(default=DEFAULT_POOL_SIZE, ge=1, le=1000)
    # Where `serve` listens (its --host and --port win). HOST and PORT are read too, as
    # platforms and `make run PORT=8001` set them.
    host: str = Field(default=DEFAULT_HOST, validation_alias=AliasChoices(*HOST_VARIABLES, "host"))
    port: int = Field(
        default=DEFAULT_PORT, ge=1, le=65535, validation_alias=AliasChoices(*PORT_VARIABLES, "port")
    )
    # The base of links in mail. Unset: this machine's URL of HOST and PORT (for a try);
    # behind a proxy or in production, the address customers reach.
    public_url: str = local_url(DEFAULT_HOST, DEFAULT_PORT)
    secret_key: str = DEV_SECRET_KEY
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [DEV_API_KEY])
    # Comma-separated keys answered 403 "API key revoked", also while still in API_KEYS: a
    # leaked key is cut off at once, and its user is told why.
    revoked_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Signs the dashboard's login cookie (docs/stats.md, Dashboard). Changing it logs
    # everyone out.
    session_secret: str = DEV_SESSION_SECRET

    # --- Intake (app/intake/): our JSON's webhook; platforms' secrets (app/shops.py) ----------
    # Signs POST /webhooks/orders (our own JSON).
    webhook_secret: str = DEV_WEBHOOK_SECRET
    # Shopify and WooCommerce webhooks. Comma-separated `secret` (any shop) or `host=secret`
    # (the Shopify shop domain, or the host of WooCommerce's X-WC-Webhook-Source); several per
    # shop while one is rotated. Empty: that platform's deliveries are refused (development
    # fills in dev-shopify-secret and dev-woocommerce-secret). WooCommerce has no consent
    # field: an order meta entry with this key and a yes/1/true value gives marketing
    # consent. SHOPIFY_SECRET and WOOCOMMERCE_SECRET (singular, the names first documented)
    # are read too when the plural is not set.
    shopify_secrets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices(
            "AFTERSALE_SHOPIFY_SECRETS", "AFTERSALE_SHOPIFY_SECRET", "shopify_secrets"
        ),
    )
    woocommerce_secrets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices(
            "AFTERSALE_WOOCOMMERCE_SECRETS", "AFTERSALE_WOOCOMMERCE_SECRET", "woocommerce_secrets"
        ),
    )
    woocommerce_consent_meta_key: str = Field(default="aftersale_marketing_consent", min_length=1)
    # WooCommerce orders count as placed once paid (processing, completed). `on-hold` is
    # awaiting payment (a bank transfer, a cheque); true counts it as paid too.
    woocommerce_on_hold_is_paid: bool = False
    # `inline`: a webhook is applied and planned in its request, and the answer says how many
    # messages it planned. `queued`: the request validates and stores it, answers `queued`,
    # and a worker applies it oldest first, seconds later (docs/deployment.md, Intake under
    # load): about five times the orders a second per API process, and spikes wait in the
    # database instead of timing out at the platform.
    intake_mode: Literal["inline", "queued"] = "inline"
    # Days the raw body of every webhook delivery is kept (to replay, export or debug); later
    # it is emptied, its row kept so late retries still dedupe. An unreplayed intake failure
    # keeps its body until it is replayed (docs/deployment.md, Intake).
    raw_payload_retention_days: int = Field(default=30, ge=1, le=3650)
    # An order item whose product the catalog did not know yet is matched again when the
    # product arrives; an order placed up to this many days before then still gets the mail
    # of rules that now match it (docs/catalog.md, Late products).
    catalog_late_days: int = Field(default=2, ge=0, le=60)

    # --- Signed links in mail: unsubscribe, tracking, survey ----------------------------------
    # Sign the one-click unsubscribe links of marketing mail (RFC 8058). Comma-separated: new
    # links are signed with the first, links signed with any of them keep working, so a key
    # is rotated by putting a new one first. Dropping a secret breaks the links it signed.
    unsubscribe_secrets: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [DEV_UNSUBSCRIBE_SECRET], min_length=1
    )
    # Engagement tracking (docs/tracking.md): the open pixel and click redirects in HTML
    # mail. A rule can opt out with `track: false`.
    tracking_enabled: bool = True
    # Sign tracking links; comma-separated and rotated like `unsubscribe_secrets`.
    tracking_secrets: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [DEV_TRACKING_SECRET], min_length=1
    )
    # Days after sending that tracking links keep working; later they answer 404.
    tracking_link_days: int = Field(default=365, ge=1, le=3650)
    # An open or click this soon after sending was fetched on delivery, not by a reader.
    tracking_prefetch_seconds: float = Field(default=10.0, ge=0)
    # This many different links of one message clicked within `burst_seconds`: a scanner.
    tracking_burst_links: int = Field(default=3, ge=2)
    tracking_burst_seconds: float = Field(default=3.0, gt=0)
    # Comma-separated CIDRs Apple's Mail Privacy Protection proxy fetches from.
    tracking_apple_proxy_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_APPLE_PROXY_NETWORKS)
    )
    # Comma-separated, case-insensitive user-agent parts; see the defaults above.
    tracking_scanner_user_agents: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SCANNER_USER_AGENTS)
    )
    tracking_image_proxy_user_agents: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_IMAGE_PROXY_USER_AGENTS)
    )

    # Survey answers (docs/tracking.md, Survey answers): sign the one-click 0-10 links of
    # `{{ survey.links }}`; comma-separated and rotated like `unsubscribe_secrets`.
    survey_secrets: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [DEV_SURVEY_SECRET], min_length=1
    )
    # Days after sending that survey links take answers; later they answer 404.
    survey_link_days: int = Field(default=365, ge=1, le=3650)

    # --- Stats (app/stats/) -------------------------------------------------------------------
    # Stats (docs/stats.md). An order this many days after a human click (or open, with
    # `click_or_open`) on a message converts for it. The retention is kept above the longest
    # window, so a purge never takes an event attribution still needs.
    attribution_window_days: int = Field(default=5, ge=1, le=30)
    attribution_via: Literal["click", "click_or_open"] = "click"
    # Raw opens and clicks older than this are deleted; the rolled-up counts stay.
    tracking_retention_days: int = Field(default=400, ge=31)
    # Seconds between runs of the job that folds new events into the stats.
    stats_rollup_interval: float = Field(default=60.0, gt=0)

    # --- Catalog: recommendations, links that sell (app/shops.py) -----------------------------
    # Recommendations (docs/rules.md, "Recommendations"): purchases older than the lookback
    # do not count, and a purchase counts half after each half-life. Each worker keeps what
    # it read for a shop this many seconds, so a batch costs no query for products seen.
    recommend_lookback_days: int = Field(default=365, ge=1, le=3650)
    recommend_half_life_days: float = Field(default=90.0, gt=0, le=3650)
    recommend_cache_seconds: float = Field(default=600.0, ge=0)
    # Links in mail (docs/platforms.md, Links that sell). The shop's storefront for
    # `shop.url`: SHOP_URLS by shop as intake names it (`my-shop.myshopify.com=https://…`,
    # a WooCommerce site's host, `default` for our JSON), else SHOP_URL, else the shop's own
    # host. SHOP_ADDRESS: the postal address marketing mail must carry (required in
    # production when a marketing rule is loaded). REORDER_URL: our JSON's reorder link,
    # with {sku}, {quantity}, {product_id} and {variant_id}.
    shop_url: str | None = None
    shop_urls: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    shop_address: str | None = None
    reorder_url: str | None = None

    # --- Rules and templates ------------------------------------------------------------------
    rules_dir: Path = ROOT / "rules"
    # A rules folder above either is refused, and the last good set kept (docs/rules.md).
    rules_max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    rules_max_count: int = Field(default=2_000, ge=1)
    rules_poll_interval: float = Field(default=2.0, gt=0)
    # How long messages whose rule is missing from the loaded rules wait (`paused`) for it
    # to come back before they are cancelled (`rule_removed`): a duration as rules write it
    # (`7d`, `36h`, `2w`) or seconds.
    rule_grace: timedelta = Field(default=timedelta(days=7), gt=timedelta(0))
    templates_dir: Path = ROOT / "templates" / "email"

    # --- The sender and the reader's defaults (app/mail/addresses.py) -------------------------
    mail_from: str = Field(
        default="Aftersale Shop <shop@example.com>",
        validation_alias="AFTERSALE_FROM",
    )
    reply_to: str | None = None
    # The domain whose mail the inbound listener (`serve --role inbound`) receives (default:
    # BOUNCE_ADDRESS's). When known, marketing mail's List-Unsubscribe also names
    # `unsubscribe+<token>@INBOUND_DOMAIN`.
    inbound_domain: str | None = None
    default_time_zone: str = "UTC"
    default_locale: str = "en"

    # --- Sending: dispatcher, retries, SMTP server and pace (app/mail/smtp_url.py) ------------
    smtp_url: str | None = None
    # Built-in SMTP capture for development when no SMTP_URL is given.
    dev_smtp_host: str = "127.0.0.1"
    dev_smtp_port: int = 2525
    dev_outbox_dir: Path = ROOT / "var" / "outbox"

    dispatch_interval: float = Field(default=5.0, gt=0)
    dispatch_batch_size: int = Field(default=100, ge=1, le=10_000)
    # Messages of a batch prepared at once (checks, render, links) while others wait on the
    # database or on one of the SMTP pool's connections, which still cap the sends.
    dispatch_concurrency: int = Field(default=16, ge=1, le=1_000)
    # Seconds one message's templates may take to render (sending, previews, rule checks);
    # past it the message fails with `render_timeout` (app/mail/render_budget.py).
    render_timeout: float = Field(default=5.0, gt=0, le=300)
    # A worker that claimed a message must finish it within the lease, or another worker takes it.
    lease_seconds: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    retry_base_seconds: float = Field(default=60.0, gt=0)
    retry_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    # Sender-side failures (connection, TLS, AUTH, MAIL FROM, 421) in a row before a worker
    # pauses sending; the pause starts at SENDER_PAUSE_SECONDS and doubles up to the max
    # while the server keeps failing (app/mail/breaker.py).
    sender_pause_after: int = Field(default=5, ge=1, le=10_000)
    sender_pause_seconds: float = Field(default=30.0, gt=0)
    sender_pause_max_seconds: float = Field(default=600.0, gt=0)

    # Sending pace of each worker process, 0 = unlimited: all mail per second, and mail per
    # minute to one recipient domain; SMTP_DOMAIN_RATES overrides the latter for some domains
    # ("gmail.com=60,yahoo.com=30"). Messages wait for their turn; none fails for it.
    smtp_rate_per_second: float = Field(default=0, ge=0, allow_inf_nan=False)
    smtp_domain_rate_per_minute: float = Field(default=0, ge=0, allow_inf_nan=False)
    smtp_domain_rates: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)

    # --- DKIM (app/mail/dkim_key.py) ----------------------------------------------------------
    # DKIM: with a selector and a key (a PEM file, or the PEM itself), every message is
    # signed for DKIM_DOMAIN (default: the domain of FROM). See docs/deployment.md.
    dkim_selector: str | None = None
    dkim_private_key_path: Path | None = None
    dkim_private_key: SecretStr | None = None
    dkim_domain: str | None = None

    # --- Operations ---------------------------------------------------------------------------
    # Operations (docs/deployment.md, Monitoring). Log lines: `text`, or `json` (one object a
    # line; the default in production).
    log_format: Literal["text", "json"] = "text"
    # DEBUG adds the scheduler's line per job run and the SMTP capture's sessions (which name
    # addresses). LOG_LEVEL is read too.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        validation_alias=AliasChoices("AFTERSALE_LOG_LEVEL", "LOG_LEVEL", "log_level"),
    )
    # The interactive API reference at /docs (served by the app, nothing from the internet).
    # Default: on in development, off in production.
    api_docs: bool = True
    # Bearer token for GET /metrics from other hosts; loopback clients need none. Unset:
    # localhost only.
    metrics_token: str | None = None
    # `serve --role worker` has no HTTP API: with a port, it serves its own metrics there
    # (no authentication: keep the host private).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # With a path, a worker writes the time there every 10 s after a database round trip,
    # for `aftersale health` (the Docker HEALTHCHECK of a role without HTTP). Empty: off.
    worker_heartbeat_file: Path | None = None
    # How long `serve` keeps an idle HTTP connection open. Behind a load balancer it must
    # outlast the balancer's own idle timeout (60 s on AWS ALB), or the balancer reuses a
    # connection the server is closing and answers 502. uvicorn's own default is 5 s.
    http_keepalive_seconds: int = Field(default=75, ge=1, le=3600)
    # Requests a minute per client IP to /o/, /c/, /u/ and /s/ (0 = unlimited), `burst` at once;
    # per API process.
    public_rate_per_minute: float = Field(default=600, ge=0, allow_inf_nan=False)
    public_rate_burst: int = Field(default=60, ge=1)

    # --- Mail feedback (app/feedback/) --------------------------------------------------------
    # Mail feedback: bounces and complaints (docs/deliverability.md). With BOUNCE_ADDRESS
    # (e.g. bounces@mail.example.com) every message's envelope sender is
    # `bounces+<reference>@mail.example.com` (VERP), so a bounce names its message; unset, the
    # envelope sender is FROM's address. Either way messages carry X-Aftersale-Message.
    bounce_address: str | None = None
    # `serve --role inbound` (and `--role all` when set) receives DSN and ARF mail here.
    inbound_smtp_port: int | None = Field(default=None, ge=1, le=65535)
    inbound_smtp_host: str = "127.0.0.1"
    # Largest inbound message accepted (a bounce quotes at most the original's headers).
    inbound_max_bytes: int = Field(default=1_048_576, ge=10_240)
    # imaps://user:password@host[:port]/MAILBOX: read bounces and complaints from a mailbox
    # every BOUNCE_IMAP_INTERVAL seconds (worker role); read messages are deleted.
    bounce_imap_url: SecretStr | None = None
    bounce_imap_interval: float = Field(default=300.0, gt=0)
    # The provider that sends for us, so its own metadata header echoes our reference back in
    # its webhooks (Postmark Metadata, SendGrid unique args, Mailgun user-variables).
    mail_provider: Literal["smtp", "ses", "postmark", "sendgrid", "mailgun"] = "smtp"
    # Amazon SES through SNS: the PEM certificate SNS signs with (download it once from the
    # SigningCertURL of a message; nothing is fetched at run time), the topics accepted
    # (comma-separated ARNs; empty: any), and whether a SubscriptionConfirmation is
    # confirmed by fetching its SubscribeURL (else it is logged for the operator).
    ses_sns_certificate: Path | None = None
    ses_sns_topic_arns: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ses_sns_confirm_subscriptions: bool = False
    # Postmark webhooks: the HTTP basic auth user and password set on the webhook URL.
    postmark_webhook_username: str | None = None
    postmark_webhook_password: SecretStr | None = None
    # SendGrid Signed Event Webhook: its verification key (base64 DER or PEM).
    sendgrid_webhook_public_key: str | None = None
    # Mailgun: the HTTP webhook signing key.
    mailgun_webhook_signing_key: SecretStr | None = None
    # Signed webhooks (SendGrid, Mailgun) older than this are refused as replays.
    mail_webhook_max_age_seconds: int = Field(default=900, ge=60)

    @field_validator(
        "api_keys",
        "revoked_api_keys",
        "unsubscribe_secrets",
        "shopify_secrets",
        "woocommerce_secrets",
        "tracking_secrets",
        "survey_secrets",
        "tracking_apple_proxy_networks",
        "tracking_scanner_user_agents",
        "tracking_image_proxy_user_agents",
        "ses_sns_topic_arns",
        mode="before",
    )
    @classmethod
    def _split_comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("rule_grace", mode="before")
    @classmethod
    def _parse_rule_grace(cls, value: object) -> object:
        return parse_fixed_span(value) if isinstance(value, str) else value

    @field_validator("tracking_apple_proxy_networks")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a CIDR network: {value!r}") from exc
        return values

    @field_validator("tracking_scanner_user_agents", "tracking_image_proxy_user_agents")
    @classmethod
    def _lower_case(cls, values: list[str]) -> list[str]:
        return [value.lower() for value in values if value.strip()]

    @field_validator("smtp_domain_rates", mode="before")
    @classmethod
    def _parse_domain_rates(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_domain_rates(value)
        if isinstance(value, Mapping):
            return {dns_domain(str(domain)): rate for domain, rate in value.items()}
        return value

    @field_validator("smtp_domain_rates")
    @classmethod
    def _domain_rates_not_negative(cls, rates: dict[str, float]) -> dict[str, float]:
        return {domain: checked_rate(domain, rate) for domain, rate in rates.items()}

    @field_validator("shop_url", "shop_address", "reorder_url", mode="before")
    @classmethod
    def _shop_blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("shop_url")
    @classmethod
    def _shop_url(cls, value: str | None) -> str | None:
        return None if value is None else web_url(value, setting="SHOP_URL")

    @field_validator("shop_urls", mode="before")
    @classmethod
    def _parse_shop_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_shop_urls(value)
        if isinstance(value, Mapping):
            return {
                str(shop).strip().lower(): web_url(str(url), setting=f"SHOP_URLS ({shop})")
                for shop, url in value.items()
            }
        return value

    @field_validator("shop_address")
    @classmethod
    def _one_address(cls, value: str | None) -> str | None:
        # One line in the footer; "\n" in an env file stands for a line break.
        return None if value is None else value.replace("\\n", "\n").strip()

    @field_validator("reorder_url")
    @classmethod
    def _reorder_url(cls, value: str | None) -> str | None:
        return None if value is None else check_reorder_template(value)

    @field_validator(
        "dkim_selector", "dkim_domain", "metrics_token", "worker_heartbeat_file", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("dkim_selector")
    @classmethod
    def _dkim_selector_is_a_dns_name(cls, value: str | None) -> str | None:
        return None if value is None else dkim_selector(value)

    @field_validator("dkim_domain", "inbound_domain")
    @classmethod
    def _is_a_domain(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else dns_domain(value)

    @model_validator(mode="after")
    def _dkim_is_complete(self) -> Settings:
        # Half a DKIM setup would send unsigned mail while the operator believes it signed,
        # so it refuses to start in every environment, as does a key that cannot sign.
        self._dkim_config()
        return self

    @field_validator(
        "bounce_address",
        "ses_sns_certificate",
        "postmark_webhook_username",
        "sendgrid_webhook_public_key",
        mode="before",
    )
    @classmethod
    def _feedback_blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("bounce_address")
    @classmethod
    def _bounce_address(cls, value: str | None) -> str | None:
        return None if value is None else bounce_address(value)

    @model_validator(mode="after")
    def _inbound_domain_from_bounce_address(self) -> Settings:
        # One MX receives both: bounces to bounces+<ref>@ and unsubscribes to unsubscribe+<t>@.
        if self.inbound_domain is None and self.bounce_address is not None:
            self.inbound_domain = self.bounce_address.rpartition("@")[2]
        return self

    @field_validator("shopify_secrets", "woocommerce_secrets")
    @classmethod
    def _secret_entries(cls, entries: list[str]) -> list[str]:
        return check_secret_entries(entries)

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

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _production_logs_json(self) -> Settings:
        if self.env == "production" and "log_format" not in self.model_fields_set:
            self.log_format = "json"
        return self

    @model_validator(mode="after")
    def _production_hides_api_docs(self) -> Settings:
        # The reference maps every route for a visitor; an operator may still want it.
        if self.env == "production" and "api_docs" not in self.model_fields_set:
            self.api_docs = False
        return self

    @model_validator(mode="after")
    def _public_url_follows_the_listener(self) -> Settings:
        if "public_url" not in self.model_fields_set or not self.public_url.strip():
            self.public_url = local_url(self.host, self.port)
        return self

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.env != "production":
            return self
        secrets = {
            "AFTERSALE_SECRET_KEY": self.secret_key,
            "AFTERSALE_WEBHOOK_SECRET": self.webhook_secret,
            "AFTERSALE_SESSION_SECRET": self.session_secret,
        }
        if self.metrics_token is not None:
            secrets["AFTERSALE_METRICS_TOKEN"] = self.metrics_token
        for index, key in enumerate(self.api_keys):
            secrets[f"AFTERSALE_API_KEYS (key {index + 1})"] = key
        for index, key in enumerate(self.unsubscribe_secrets):
            secrets[f"AFTERSALE_UNSUBSCRIBE_SECRETS (secret {index + 1})"] = key
        for index, key in enumerate(self.tracking_secrets):
            secrets[f"AFTERSALE_TRACKING_SECRETS (secret {index + 1})"] = key
        for index, key in enumerate(self.survey_secrets):
            secrets[f"AFTERSALE_SURVEY_SECRETS (secret {index + 1})"] = key
        for name, entries in (
            ("AFTERSALE_SHOPIFY_SECRETS", self.shopify_secrets),
            ("AFTERSALE_WOOCOMMERCE_SECRETS", self.woocommerce_secrets),
        ):
            for index, entry in enumerate(entries):
                secrets[f"{name} (secret {index + 1})"] = split_secret_entry(entry)[1]
        problems = [name for name, value in secrets.items() if _is_placeholder(value)]
        if not self.api_keys:
            problems.append("AFTERSALE_API_KEYS (none set)")
        if not self.smtp_url:
            problems.append("AFTERSALE_SMTP_URL (required in production)")
        sender = self.from_address[1].rpartition("@")[2]
        if is_reserved_domain(sender):
            problems.append(
                f"AFTERSALE_FROM ({sender} is a reserved domain: set the shop's own address)"
            )
        if problems:
            raise ConfigError(
                "refusing to start in production with missing or placeholder settings: "
                + ", ".join(problems)
                + f" (secrets need at least {_MIN_SECRET_LENGTH} characters and no dev default)"
            )
        return self

    def rules_problem(self, *, marketing_rules: Sequence[str]) -> str | None:
        """What keeps these rules from running with these settings, naming the setting:
        in production, marketing mail must carry the shop's postal address."""
        if self.env == "production" and marketing_rules and self.shop_address is None:
            return (
                "refusing to start in production: AFTERSALE_SHOP_ADDRESS is not set, and "
                f"marketing mail must carry the shop's postal address (marketing rules: "
                f"{', '.join(sorted(marketing_rules))})"
            )
        return None

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    @cached_property
    def smtp(self) -> SmtpConfig:
        """The SMTP server to send through; the built-in capture when none is configured."""
        if self.smtp_url:
            server = parse_smtp_url(self.smtp_url)
        else:
            server = parse_smtp_url(
                f"smtp://{self.dev_smtp_host}:{self.dev_smtp_port}?starttls=off&pool_size=2"
            )
        return dataclasses.replace(
            server,
            rate_per_second=self.smtp_rate_per_second,
            domain_rate_per_minute=self.smtp_domain_rate_per_minute,
            domain_rates_per_minute=dict(self.smtp_domain_rates),
        )

    @cached_property
    def dkim(self) -> DkimConfig | None:
        """The signing key, or None when DKIM is not configured."""
        return self._dkim_config()

    def _dkim_config(self) -> DkimConfig | None:
        key_text = self.dkim_private_key
        return dkim_config(
            selector=self.dkim_selector,
            key_path=self.dkim_private_key_path,
            key_text=None if key_text is None else key_text.get_secret_value(),
            domain=self.dkim_domain,
            from_address=self.from_address[1],
        )

    @property
    def uses_dev_smtp_capture(self) -> bool:
        return self.is_development and not self.smtp_url

    @property
    def from_address(self) -> tuple[str, str]:
        """(display name, address) of the sender."""
        return email.utils.parseaddr(self.mail_from)

    @property
    def rules_bounds(self) -> Bounds:
        return Bounds(max_bytes=self.rules_max_bytes, max_count=self.rules_max_count)

    @property
    def sender_domain(self) -> str:
        """The domain of FROM as it goes on the wire (IDNA): Message-IDs end in it, so they
        align with the sender the receiving side checks (DKIM, DMARC)."""
        try:
            return dns_domain(self.from_address[1].rpartition("@")[2])
        except ValueError:
            return "localhost"


def _is_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return (
        lowered in _PLACEHOLDERS
        or lowered.startswith("dev-")
        or "change-me" in lowered
        or "changeme" in lowered
        or len(value) < _MIN_SECRET_LENGTH
    )
