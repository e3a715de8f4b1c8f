"""The tracking settings: lists from the environment, checked at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings


def test_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.tracking_enabled is True
    assert settings.tracking_link_days == 365
    assert settings.tracking_apple_proxy_networks == ["17.0.0.0/8"]
    assert "googleimageproxy" in settings.tracking_image_proxy_user_agents
    assert "barracuda" in settings.tracking_scanner_user_agents


def test_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERSALE_TRACKING_SECRETS", "new-tracking-key, old-tracking-key")
    monkeypatch.setenv("AFTERSALE_TRACKING_APPLE_PROXY_NETWORKS", "17.0.0.0/8, 2a02:26f7::/32")
    monkeypatch.setenv("AFTERSALE_TRACKING_SCANNER_USER_AGENTS", "Mimecast,MyScanner")
    monkeypatch.setenv("AFTERSALE_TRACKING_ENABLED", "false")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.tracking_secrets == ["new-tracking-key", "old-tracking-key"]
    assert settings.tracking_apple_proxy_networks == ["17.0.0.0/8", "2a02:26f7::/32"]
    assert settings.tracking_scanner_user_agents == ["mimecast", "myscanner"]
    assert settings.tracking_enabled is False


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match=r"not a CIDR network: '17\.0\.0\.0/33'"):
        Settings(tracking_apple_proxy_networks="17.0.0.0/33", _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="tracking_link_days"):
        Settings(_env_file=None, tracking_link_days=0)  # type: ignore[call-arg]
    monkeypatch.setenv("AFTERSALE_TRACKING_SECRETS", " , ")
    with pytest.raises(ValidationError, match="tracking_secrets"):
        Settings(_env_file=None)  # type: ignore[call-arg]
