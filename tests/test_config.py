from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.mail.smtp_url import parse_smtp_url

STRONG = "s" * 32


def production(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "production",
        "secret_key": STRONG,
        "webhook_secret": STRONG + "w",
        "session_secret": STRONG + "s",
        "api_keys": [STRONG + "k"],
        "unsubscribe_secrets": [STRONG + "u"],
        "tracking_secrets": [STRONG + "t"],
        "survey_secrets": [STRONG + "s"],
        "smtp_url": "smtp://mail.example.org:587",
        "mail_from": "Teeladen Anna <post@teeladen-anna.de>",
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_production_accepts_real_secrets() -> None:
    assert production().env == "production"


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("secret_key", "dev-secret-key-change-me", "AFTERSALE_SECRET_KEY"),
        ("webhook_secret", "changeme", "AFTERSALE_WEBHOOK_SECRET"),
        ("webhook_secret", "short", "AFTERSALE_WEBHOOK_SECRET"),
        ("session_secret", "dev-session-secret", "AFTERSALE_SESSION_SECRET"),
        ("api_keys", [], "AFTERSALE_API_KEYS"),
        ("api_keys", ["dev-api-key"], "AFTERSALE_API_KEYS"),
        ("smtp_url", None, "AFTERSALE_SMTP_URL"),
        ("shopify_secrets", ["shop.example.com=secret"], "AFTERSALE_SHOPIFY_SECRETS (secret 1)"),
        ("unsubscribe_secrets", ["dev-unsubscribe-secret"], "AFTERSALE_UNSUBSCRIBE_SECRETS"),
        ("unsubscribe_secrets", [STRONG, "short"], "AFTERSALE_UNSUBSCRIBE_SECRETS (secret 2)"),
        ("tracking_secrets", ["dev-tracking-secret"], "AFTERSALE_TRACKING_SECRETS (secret 1)"),
        ("tracking_secrets", [STRONG, "short"], "AFTERSALE_TRACKING_SECRETS (secret 2)"),
        ("survey_secrets", ["dev-survey-secret"], "AFTERSALE_SURVEY_SECRETS (secret 1)"),
        ("survey_secrets", [STRONG, "short"], "AFTERSALE_SURVEY_SECRETS (secret 2)"),
    ],
)
def test_production_refuses_placeholders_naming_the_setting(
    field: str, value: object, named: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        production(**{field: value})
    assert named in str(caught.value)


def test_development_runs_with_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.uses_dev_smtp_capture
    assert settings.smtp.port == 2525


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERSALE_API_KEYS", "one-key, two-key")
    monkeypatch.setenv("AFTERSALE_UNSUBSCRIBE_SECRETS", "new-secret, old-secret")
    monkeypatch.setenv("AFTERSALE_FROM", "Shop Name <hello@shop.example>")
    monkeypatch.setenv("AFTERSALE_DISPATCH_INTERVAL", "2.5")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.api_keys == ["one-key", "two-key"]
    assert settings.unsubscribe_secrets == ["new-secret", "old-secret"]
    assert settings.from_address == ("Shop Name", "hello@shop.example")
    assert settings.dispatch_interval == 2.5


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        Settings(default_time_zone="Mars/Olympus", _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="scheme"):
        Settings(smtp_url="http://mail", _env_file=None)  # type: ignore[call-arg]


def test_smtp_url_options() -> None:
    config = parse_smtp_url("smtps://user%40x:p%3Ass@mail.example.org?pool_size=8&timeout=10")
    assert (config.host, config.port, config.implicit_tls) == ("mail.example.org", 465, True)
    assert (config.username, config.password, config.pool_size) == ("user@x", "p:ss", 8)
    starttls = parse_smtp_url("smtp://mail.example.org:587?starttls=require")
    assert (starttls.port, starttls.starttls, starttls.implicit_tls) == (587, True, False)


def test_unsubscribe_secrets_cannot_be_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    # Links could not be signed; refused in development too, naming the setting.
    monkeypatch.setenv("AFTERSALE_UNSUBSCRIBE_SECRETS", " , ")
    with pytest.raises(ValidationError, match="unsubscribe_secrets"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "sender",
    [
        "Aftersale Shop <shop@example.com>",
        "shop@mail.example.org",
        "shop@EXAMPLE.NET",
        "Shop <shop@shop.test>",
        "shop@shop.invalid",
        "shop@localhost",
        "shop@dev.localhost",
        "shop@shop.example",
    ],
)
def test_production_refuses_a_sender_at_a_reserved_domain(sender: str) -> None:
    with pytest.raises(ValidationError) as caught:
        production(mail_from=sender)
    message = str(caught.value)
    assert "AFTERSALE_FROM" in message and "reserved domain" in message


@pytest.mark.parametrize(
    "sender",
    ["post@teeladen-anna.de", "shop@example.com.tea-shop.de", "hi@testshop.com", "a@münchen.de"],
)
def test_production_accepts_a_real_sender_domain(sender: str) -> None:
    assert production(mail_from=sender).from_address[1] == sender


def test_development_may_send_from_a_reserved_domain() -> None:
    settings = Settings(mail_from="shop@example.com", _env_file=None)  # type: ignore[call-arg]
    assert settings.sender_domain == "example.com"


def test_sender_domain_is_the_wire_form_of_from() -> None:
    settings = production(mail_from="Kaffee <post@Kaffee-München.de>")
    assert settings.sender_domain == "xn--kaffee-mnchen-3ob.de"


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("AFTERSALE_SHOPIFY_SECRET", "shopify_secrets"),
        ("AFTERSALE_WOOCOMMERCE_SECRET", "woocommerce_secrets"),
    ],
)
def test_singular_platform_secret_names_still_work(
    monkeypatch: pytest.MonkeyPatch, variable: str, field: str
) -> None:
    # The names first documented: a shop configured with them must keep verifying.
    monkeypatch.setenv(variable, "shop.example=shpss_0ne0ne0ne0ne0ne0ne, shpss_tw0tw0tw0tw0tw0tw0")
    assert getattr(production(), field) == [
        "shop.example=shpss_0ne0ne0ne0ne0ne0ne",
        "shpss_tw0tw0tw0tw0tw0tw0",
    ]
    # The plural, where both are set, is the one read.
    monkeypatch.setenv(variable + "S", "shpss_p1ura1p1ura1p1ura1")
    assert getattr(production(), field) == ["shpss_p1ura1p1ura1p1ura1"]
    # Given by name in code, as before.
    assert getattr(production(**{field: ["shpss_byn4m3byn4m3byn4m3"]}), field) == [
        "shpss_byn4m3byn4m3byn4m3"
    ]


@pytest.mark.parametrize(
    ("given", "grace"),
    [
        ("7d", timedelta(days=7)),
        ("36h", timedelta(hours=36)),
        ("2w", timedelta(weeks=2)),
        ("600", timedelta(seconds=600)),
        (3600, timedelta(hours=1)),
    ],
)
def test_rule_grace_reads_durations_or_seconds(
    monkeypatch: pytest.MonkeyPatch, given: str | int, grace: timedelta
) -> None:
    monkeypatch.setenv("AFTERSALE_RULE_GRACE", str(given))
    assert Settings().rule_grace == grace


@pytest.mark.parametrize("given", ["1mo", "soon", "0", "-1d"])
def test_rule_grace_refuses_months_nonsense_and_none(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("AFTERSALE_RULE_GRACE", given)
    with pytest.raises(ValidationError, match="rule_grace"):
        Settings()


def test_api_docs_are_on_in_development_and_off_in_production_unless_enabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings(_env_file=None).api_docs is True  # type: ignore[call-arg]
    assert production().api_docs is False
    assert production(api_docs=True).api_docs is True
    monkeypatch.setenv("AFTERSALE_API_DOCS", "true")
    assert production().api_docs is True
