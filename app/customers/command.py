"""`aftersale customers export|erase`: the privacy requests of /api/v1/customers, from a
shell. `export` prints a summary, or with `--json` the document the API returns; `erase`
asks for the id to be typed back unless `--yes`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal, TextIO

from pydantic import EmailStr, TypeAdapter, ValidationError

from app.clock import Clock, SystemClock
from app.config import Settings
from app.customers import service
from app.customers.schemas import ErasureOut
from app.db import create_engine, create_session_factory, transaction
from app.terminal import aligned, print_json

EXIT_OK = 0
EXIT_NOT_FOUND = 1  # nothing held / no such customer / not confirmed
EXIT_USAGE = 2
DEFAULT_SHOP = "default"  # the API's `shop` when a customer id is given without one

_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)


def export_command(
    *,
    settings: Settings,
    email: str | None,
    customer_id: str | None,
    shop: str | None,
    as_json: bool,
    stdout: TextIO,
    stderr: TextIO,
    clock: Clock | None = None,
) -> int:
    """GET /api/v1/customers/export?email= or /api/v1/customers/{id}/export?shop=."""
    if (email is None) == (customer_id is None):
        print("aftersale customers export: give --email ADDRESS or a customer ID", file=stderr)
        return EXIT_USAGE
    if email is not None:
        try:
            email = _EMAIL.validate_python(email).lower()
        except ValidationError:
            print(f"aftersale customers export: not an email address: {email!r}", file=stderr)
            return EXIT_USAGE
    now = (clock or SystemClock()).now()
    document = asyncio.run(
        _export(settings, email=email, customer_id=customer_id, shop=shop, now=now)
    )
    if document is None:
        problem = (
            "nothing held about this address" + (f" in shop {shop}" if shop else "")
            if email is not None
            else f"no customer {customer_id} in shop {shop or DEFAULT_SHOP}"
        )
        print(f"aftersale customers export: {problem}", file=stderr)
        return EXIT_NOT_FOUND
    if as_json:
        print_json(document, stdout)
    else:
        for line in format_summary(document):
            print(line, file=stdout)
    return EXIT_OK


async def _export(
    settings: Settings,
    *,
    email: str | None,
    customer_id: str | None,
    shop: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            if email is not None:
                return await service.export_address(session, email=email, shop=shop, now=now)
            assert customer_id is not None
            return await service.export_customer(
                session, shop=shop or DEFAULT_SHOP, external_id=customer_id, now=now
            )
    finally:
        await engine.dispose()


def format_summary(document: dict[str, Any]) -> list[str]:
    """What the export holds, counted: enough to check it before handing over the JSON."""
    # By address: a list of customer documents; by id: one customer document.
    people = document.get("customers", [document] if "customer" in document else [])
    lines = [f"exported at {document['exported_at']}"]
    rows: list[tuple[str, ...]] = [
        ("shop", "customer", "email", "orders", "messages", "opens/clicks", "erased")
    ]
    for person in people:
        customer = person["customer"]
        rows.append(
            (
                customer["shop"],
                customer["id"],
                customer["email"] or "-",
                str(len(person["orders"])),
                str(len(person["messages"])),
                str(len(person["tracking"])),
                customer["erased_at"] or "-",
            )
        )
    if len(rows) > 1:
        lines.extend(aligned(rows))
    for key, name in (
        ("suppressions", "suppression(s)"),
        ("mail_feedback", "bounce/complaint report(s)"),
    ):
        if key in document:
            lines.append(f"{len(document[key])} {name} of the address")
    lines.append("the full document: the same command with --json")
    return lines


def erase_command(
    *,
    settings: Settings,
    customer_id: str,
    shop: str | None,
    yes: bool,
    as_json: bool,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    clock: Clock | None = None,
) -> int:
    """DELETE /api/v1/customers/{id}: erase their personal data, cancel their waiting mail.

    Without `yes` the id must be typed back on a terminal; with no terminal to ask on, the
    command refuses (exit 2) rather than erase unconfirmed from a script that forgot --yes.
    """
    shop = shop or DEFAULT_SHOP
    if not yes:
        if not stdin.isatty():
            print(
                "aftersale customers erase: not confirmed: stdin is not a terminal; "
                "give --yes to erase without asking",
                file=stderr,
            )
            return EXIT_USAGE
        if not asyncio.run(_exists(settings, customer_id=customer_id, shop=shop)):
            return _no_customer(customer_id, shop, stderr)
        print(
            f"Erase customer {customer_id} of shop {shop}: their personal data everywhere, "
            "and cancel their waiting mail. This cannot be undone.",
            file=stderr,
        )
        print("Type the customer id to confirm: ", end="", file=stderr, flush=True)
        if stdin.readline().strip() != customer_id:
            print("aftersale customers erase: not confirmed; nothing erased", file=stderr)
            return EXIT_NOT_FOUND
    cancelled = asyncio.run(
        _erase(settings, customer_id=customer_id, shop=shop, clock=clock or SystemClock())
    )
    if cancelled is None:
        return _no_customer(customer_id, shop, stderr)
    if cancelled == "queued":
        print(
            f"aftersale customers erase: no customer {customer_id} in shop {shop} yet, and a "
            "queued webhook may be about them: erase again once the workers have applied it",
            file=stderr,
        )
        return EXIT_NOT_FOUND
    if as_json:
        print_json(ErasureOut(erased=True, messages_cancelled=cancelled), stdout)
    else:
        print(
            f"customer {customer_id} of shop {shop}: erased, {cancelled} message(s) cancelled",
            file=stdout,
        )
    return EXIT_OK


def _no_customer(customer_id: str, shop: str, stderr: TextIO) -> int:
    print(f"aftersale customers erase: no customer {customer_id} in shop {shop}", file=stderr)
    return EXIT_NOT_FOUND


async def _exists(settings: Settings, *, customer_id: str, shop: str) -> bool:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            return await service.find(session, shop=shop, external_id=customer_id) is not None
    finally:
        await engine.dispose()


async def _erase(
    settings: Settings, *, customer_id: str, shop: str, clock: Clock
) -> int | Literal["queued"] | None:
    """Messages cancelled; None: no such customer; "queued": none yet, and a queued webhook
    may be about them (the API answers 409)."""
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            found = await service.find(session, shop=shop, external_id=customer_id)
            if found is None:
                queued = await service.queued_for(session, shop=shop, external_id=customer_id)
                return "queued" if queued else None
            return await service.erase_customer(session, customer_id=found, now=clock.now())
    finally:
        await engine.dispose()
