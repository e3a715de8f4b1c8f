"""Which processes run the inbound listener: `--role inbound`, and `--role all` when
INBOUND_SMTP_PORT is set."""

from __future__ import annotations

import aiosmtplib
import pytest
from asgi_lifespan import LifespanManager

from app.cli import main
from app.runtime import Runtime
from tests.smtp_sink import free_port


async def test_role_all_runs_the_listener_when_a_port_is_set(runtime: Runtime) -> None:
    from app.main import create_app

    runtime.settings.inbound_smtp_port = free_port()
    app = create_app(runtime=runtime, role="all")
    async with LifespanManager(app):
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=runtime.settings.inbound_smtp_port, start_tls=False
        )
        await client.connect()
        code, _ = await client.noop()
        await client.quit()
    assert code == 250
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await aiosmtplib.SMTP(
            hostname="127.0.0.1", port=runtime.settings.inbound_smtp_port, timeout=2
        ).connect()


def test_role_inbound_needs_its_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AFTERSALE_INBOUND_SMTP_PORT", raising=False)
    monkeypatch.setenv("AFTERSALE_DATABASE_URL", "sqlite+aiosqlite:///:memory:")
    assert main(["serve", "--role", "inbound"]) == 2
    assert "AFTERSALE_INBOUND_SMTP_PORT" in capsys.readouterr().err
