from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from httpx import AsyncClient
from pydantic import ValidationError

from app.config import Settings
from app.mail.compose import compose_message, message_bytes
from app.mail.dkim import PURE_PYTHON_RSA, dkim_sign, openssl_rsa_sign
from app.mail.dkim_key import DkimConfig
from app.mail.templates import RenderedEmail
from app.outbox.dispatcher import Dispatcher
from app.preview.command import send_test_command
from app.runtime import Runtime
from tests.factories import order_created, post_event
from tests.outbox.conftest import make_dispatcher, use_rules
from tests.smtp_sink import SmtpSink
from tests.test_config import production

SELECTOR = "s2026"
MARKETING = """
rules:
  - id: next-coffee
    kind: marketing
    when: {event: order.created}
    send: {after: 0m}
    template: coffee-next-variety
"""


@dataclass(frozen=True)
class Key:
    path: Path
    pem: bytes
    # The TXT record published at {selector}._domainkey.{domain}.
    record: bytes


def generate_key(folder: Path, bits: int = 2048) -> Key:
    """An RSA key made as docs/deployment.md says: openssl genrsa, then the public part."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a DKIM key")
    path = folder / f"dkim-{bits}.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(path), str(bits)], check=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return Key(
        path=path,
        pem=path.read_bytes(),
        record=b"v=DKIM1; k=rsa; p=" + base64.b64encode(public),
    )


@pytest.fixture(scope="session")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> Key:
    return generate_key(tmp_path_factory.mktemp("dkim"))


def dns(key: Key, domain: str = "example.com") -> Callable[..., bytes | None]:
    """What DNS would answer: the key's TXT record at its selector, nothing elsewhere."""
    name = f"{SELECTOR}._domainkey.{domain}.".encode()

    def lookup(query: bytes, timeout: float = 5) -> bytes | None:
        return key.record if query == name else None

    return lookup


def signed_headers(raw: bytes) -> list[str]:
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", raw.split(b"\r\n\r\n", 1)[0]).decode()
    [signature] = [line for line in unfolded.split("\r\n") if line.startswith("DKIM-Signature:")]
    match = re.search(r"\bh=([^;]+)", signature)
    assert match is not None
    return [name.strip() for name in match.group(1).split(":")]


def tamper(raw: bytes, header: bytes, new_value: bytes) -> bytes:
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = re.sub(rb"\r\n[ \t]+", b" ", head).split(b"\r\n")
    changed = [
        header + b": " + new_value if line.lower().startswith(header.lower() + b":") else line
        for line in lines
    ]
    assert changed != lines, f"no {header!r} header"
    return b"\r\n".join(changed) + b"\r\n\r\n" + body


def composed(*, unsubscribe_url: str | None = "https://shop.example.com/u/abc") -> bytes:
    message, _ = compose_message(
        rendered=RenderedEmail(
            subject="Ваш заказ готов: a subject long enough to be folded over two lines",
            text="Hello\n",
            html="<p>Hello</p>",
        ),
        from_name="Shop",
        from_address="shop@example.com",
        to_name="Анна Иванова",
        to_address="anna@example.org",
        message_id_domain="example.com",
        now=datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        reply_to="Support <help@example.com>",
        unsubscribe_url=unsubscribe_url,
    )
    return message_bytes(message)


# --- signing: bytes in, bytes out ---------------------------------------------------------


def test_without_a_key_the_message_is_unchanged() -> None:
    raw = composed()
    assert dkim_sign(raw, None) is raw


def test_signature_verifies_and_covers_the_headers(dkim_key: Key) -> None:
    key = DkimConfig(selector=SELECTOR, domain="example.com", private_key=dkim_key.pem)
    signed = dkim_sign(composed(), key)
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert dkim.verify(signed, dnsfunc=dns(dkim_key))
    covered = signed_headers(signed)
    for name in (
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "reply-to",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ):
        # Twice: once for the header, once more so that a second one cannot be added.
        assert covered.count(name) == 2, name


def test_openssl_signs_the_very_bytes_dkimpy_would(
    dkim_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signature is OpenSSL's (app/mail/dkim.py points dkimpy's RSA there): the same
    header, byte for byte, as dkimpy's own pure-Python RSA makes, for each key size."""
    assert dkim.RSASSA_PKCS1_v1_5_sign is openssl_rsa_sign
    # One signing time (t=) for both, so only the RSA step can differ.
    monkeypatch.setattr(dkim.time, "time", lambda: 1796676340.0)
    raw = composed()
    for pem, record in ((dkim_key.pem, dkim_key.record), *_other_keys()):
        key = DkimConfig(selector=SELECTOR, domain="example.com", private_key=pem)
        fast = dkim_sign(raw, key)
        with monkeypatch.context() as patched:
            patched.setattr(dkim, "RSASSA_PKCS1_v1_5_sign", PURE_PYTHON_RSA)
            slow = dkim_sign(raw, key)
        assert fast == slow
        assert dkim.verify(fast, dnsfunc=lambda *_, txt=record, **__: txt)


def _other_keys() -> list[tuple[bytes, bytes]]:
    """A 1024-bit and a 4096-bit key (PKCS#8, as OpenSSL 3 writes them): their PEM and the
    TXT record that publishes the public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    keys = []
    for bits in (1024, 4096):
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        keys.append((pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)))
    return keys


def test_transactional_mail_signs_only_what_it_has(dkim_key: Key) -> None:
    key = DkimConfig(selector=SELECTOR, domain="example.com", private_key=dkim_key.pem)
    signed = dkim_sign(composed(unsubscribe_url=None), key)
    assert dkim.verify(signed, dnsfunc=dns(dkim_key))
    assert "list-unsubscribe" not in signed_headers(signed)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (b"Subject", b"You won a prize"),
        (b"From", b"Bank <security@example.com>"),
        (b"List-Unsubscribe", b"<https://evil.example/u/abc>"),
    ],
)
def test_tampering_with_a_signed_header_breaks_the_signature(
    dkim_key: Key, header: bytes, value: bytes
) -> None:
    key = DkimConfig(selector=SELECTOR, domain="example.com", private_key=dkim_key.pem)
    signed = dkim_sign(composed(), key)
    assert not dkim.verify(tamper(signed, header, value), dnsfunc=dns(dkim_key))


def test_adding_a_second_subject_breaks_the_signature(dkim_key: Key) -> None:
    key = DkimConfig(selector=SELECTOR, domain="example.com", private_key=dkim_key.pem)
    signed = dkim_sign(composed(), key)
    head, body = signed.split(b"\r\n\r\n", 1)
    assert not dkim.verify(head + b"\r\nSubject: extra\r\n\r\n" + body, dnsfunc=dns(dkim_key))


def test_relaxed_canonicalization_survives_refolding(dkim_key: Key) -> None:
    key = DkimConfig(selector=SELECTOR, domain="example.com", private_key=dkim_key.pem)
    signed = dkim_sign(composed(), key)
    head, body = signed.split(b"\r\n\r\n", 1)
    # A relay that unfolds headers and pads the Date: relaxed/relaxed still verifies.
    refolded = re.sub(rb"\r\n(?=[ \t])(?!\s*b=)", b"", head).replace(b"Date: ", b"Date:   ")
    assert dkim.verify(refolded + b"\r\n\r\n" + body, dnsfunc=dns(dkim_key))


# --- settings --------------------------------------------------------------------------


def dkim_settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_settings_with_a_key_file(dkim_key: Key) -> None:
    settings = dkim_settings(dkim_selector=SELECTOR, dkim_private_key_path=dkim_key.path)
    assert settings.dkim == DkimConfig(
        selector=SELECTOR, domain="example.com", private_key=dkim_key.pem
    )
    assert "BEGIN" not in repr(settings.dkim)


def test_settings_with_the_pem_in_a_variable(
    monkeypatch: pytest.MonkeyPatch, dkim_key: Key
) -> None:
    # As one line with "\n" escapes, the way a PEM often ends up in an environment variable.
    monkeypatch.setenv("AFTERSALE_DKIM_PRIVATE_KEY", dkim_key.pem.decode().replace("\n", "\\n"))
    monkeypatch.setenv("AFTERSALE_DKIM_SELECTOR", SELECTOR)
    monkeypatch.setenv("AFTERSALE_DKIM_DOMAIN", "Mail.Bücher.example")
    monkeypatch.setenv("AFTERSALE_FROM", "Shop <shop@bücher.example>")
    settings = dkim_settings()
    assert settings.dkim is not None
    assert settings.dkim.domain == "mail.xn--bcher-kva.example"
    assert settings.dkim.private_key.strip() == dkim_key.pem.strip()
    assert "BEGIN" not in repr(settings)


def test_domain_defaults_to_the_from_domain(dkim_key: Key) -> None:
    settings = dkim_settings(
        dkim_selector=SELECTOR,
        dkim_private_key_path=dkim_key.path,
        mail_from="Shop <hello@Shop.Example.org>",
    )
    assert settings.dkim is not None
    assert settings.dkim.domain == "shop.example.org"


def test_no_dkim_settings_no_signing() -> None:
    assert dkim_settings().dkim is None


def test_production_with_dkim_starts(dkim_key: Key) -> None:
    settings = production(dkim_selector=SELECTOR, dkim_private_key_path=dkim_key.path)
    assert settings.dkim is not None


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (
            {"dkim_selector": SELECTOR},
            "AFTERSALE_DKIM_SELECTOR is 's2026' but there is no key",
        ),
        (
            {"dkim_selector": SELECTOR, "dkim_private_key_path": "/nonexistent/dkim.pem"},
            "AFTERSALE_DKIM_PRIVATE_KEY_PATH: cannot read /nonexistent/dkim.pem",
        ),
        (
            {"dkim_selector": SELECTOR, "dkim_private_key": "-----BEGIN PRIVATE KEY-----\nxx"},
            "AFTERSALE_DKIM_PRIVATE_KEY: not a PEM RSA private key",
        ),
        (
            {"dkim_private_key": "-----BEGIN PRIVATE KEY-----\nxx"},
            "AFTERSALE_DKIM_SELECTOR is not",
        ),
        ({"dkim_selector": "bad selector!"}, "not a DNS label"),
    ],
)
@pytest.mark.parametrize("env", ["production", "development"])
def test_half_configured_dkim_refuses_to_start(
    values: dict[str, object], says: str, env: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        if env == "production":
            production(**values)
        else:
            dkim_settings(**values)
    assert says in str(caught.value)


def test_both_key_settings_refuse_to_start(dkim_key: Key) -> None:
    with pytest.raises(ValidationError, match="not both"):
        dkim_settings(
            dkim_selector=SELECTOR,
            dkim_private_key_path=dkim_key.path,
            dkim_private_key=dkim_key.pem.decode(),
        )


def test_a_short_key_refuses_to_start(tmp_path: Path) -> None:
    weak = generate_key(tmp_path, bits=512)
    with pytest.raises(ValidationError, match="512 bits"):
        dkim_settings(dkim_selector=SELECTOR, dkim_private_key_path=weak.path)


# --- on the wire ----------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings, dkim_key: Key) -> Settings:
    """The suite's settings, signing with the test key."""
    return settings.model_copy(
        update={"dkim_selector": SELECTOR, "dkim_private_key_path": dkim_key.path}
    )


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-dkim")
    yield worker
    await worker.sender.close()


async def test_marketing_mail_from_the_dispatcher_is_signed(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    dkim_key: Key,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, MARKETING)
    await post_event(client, order_created(email="anna@example.org"))
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    [mail] = smtp_sink.received
    assert "List-Unsubscribe" in mail.message
    assert dkim.verify(mail.raw, dnsfunc=dns(dkim_key))
    covered = signed_headers(mail.raw)
    assert {"list-unsubscribe", "list-unsubscribe-post", "subject", "from", "to"} <= set(covered)
    changed = tamper(mail.raw, b"Subject", b"Something else entirely")
    assert not dkim.verify(changed, dnsfunc=dns(dkim_key))


def test_send_test_is_signed(settings: Settings, smtp_sink: SmtpSink, dkim_key: Key) -> None:
    code = send_test_command(
        settings=settings,
        rule_id="thank-you",
        to="qa@example.net",
        order=None,
        locale=None,
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    assert code == 0
    [mail] = smtp_sink.received
    assert dkim.verify(mail.raw, dnsfunc=dns(dkim_key))
    assert not dkim.verify(tamper(mail.raw, b"Subject", b"[TEST] other"), dnsfunc=dns(dkim_key))
