"""Marketing mail must carry the shop's postal address: in production, marketing rules without
AFTERSALE_SHOP_ADDRESS refuse to start, naming the setting and the rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.cli import main
from app.config import ROOT, ConfigError
from app.preview.lint import TemplateCheck
from app.runtime import Runtime
from tests.test_config import STRONG, production


def rules_folder(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(ROOT / "rules" / f"{name}.yaml", folder)
    return folder


async def test_production_refuses_marketing_rules_without_the_address(tmp_path: Path) -> None:
    folder = rules_folder(tmp_path, "thank-you", "birthday", "diapers-restock")
    database = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    settings = production(rules_dir=folder, database_url=database)
    with pytest.raises(ConfigError) as refused:
        Runtime.create(settings, templates=TemplateCheck.for_settings(settings))
    message = str(refused.value)
    assert "AFTERSALE_SHOP_ADDRESS" in message
    assert "birthday, diapers-restock" in message and "thank-you" not in message

    # With the address it starts; so do transactional rules alone, and development.
    addressed = production(
        rules_dir=folder, database_url=database, shop_address="Teeladen Anna, Marktplatz 3, Jena"
    )
    for fine in (
        addressed,
        production(rules_dir=rules_folder(tmp_path / "t", "thank-you"), database_url=database),
        settings.model_copy(update={"env": "development"}),
    ):
        runtime = Runtime.create(fine, templates=TemplateCheck.for_settings(fine))
        assert runtime.rules.loaded
        await runtime.close()


def test_serve_says_which_setting_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    environment = {
        "ENV": "production",
        "SECRET_KEY": STRONG,
        "WEBHOOK_SECRET": STRONG + "w",
        "SESSION_SECRET": STRONG + "s",
        "API_KEYS": STRONG + "k",
        "UNSUBSCRIBE_SECRETS": STRONG + "u",
        "TRACKING_SECRETS": STRONG + "t",
        "SURVEY_SECRETS": STRONG + "s",
        "SMTP_URL": "smtp://mail.example.org:587",
        "FROM": "Teeladen Anna <post@teeladen-anna.de>",
        "RULES_DIR": str(rules_folder(tmp_path, "birthday")),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
    }
    for name, value in environment.items():
        monkeypatch.setenv(f"AFTERSALE_{name}", value)
    monkeypatch.delenv("AFTERSALE_SHOP_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env file
    assert main(["serve", "--role", "worker"]) == 2
    error = capsys.readouterr().err
    assert "configuration error" in error and "AFTERSALE_SHOP_ADDRESS" in error
    assert "birthday" in error
