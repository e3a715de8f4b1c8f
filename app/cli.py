"""The `aftersale` command."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

# Settings and everything else are imported where used: `aftersale health` runs every few
# seconds in a container and must start fast.
if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger("aftersale")

# Exit code of a command that cannot start as configured (settings, a busy port).
CANNOT_START = 2


def main(argv: Sequence[str] | None = None) -> int:
    from app import version

    parser = argparse.ArgumentParser(prog="aftersale", description=__doc__)
    parser.add_argument("--version", action="version", version=f"aftersale {version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply all migrations")

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument(
        "--role",
        choices=["api", "worker", "all", "inbound"],
        default="all",
        help="api: HTTP only; worker: sending only; all: both in one process (and the "
        "inbound listener when INBOUND_SMTP_PORT is set); inbound: the SMTP listener for "
        "bounces and complaints only",
    )
    serve.add_argument(
        "--host", help="address to listen on (default: AFTERSALE_HOST or HOST, else 127.0.0.1)"
    )
    serve.add_argument(
        "--port",
        type=int,
        help="port to listen on (default: AFTERSALE_PORT or PORT, else 8000); PUBLIC_URL, "
        "when not set, follows it",
    )

    rules = commands.add_parser("rules", help="lifecycle rules")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_commands.add_parser(
        "check", help="lint rule files and their templates; exit 1 on any error"
    )
    check.add_argument("dir", nargs="?", type=Path, help="rules folder (default: RULES_DIR)")
    check.add_argument("--templates", type=Path, help="templates folder (default: TEMPLATES_DIR)")

    rules_commands.add_parser("schema", help="print the JSON Schema of rule files")

    add_simulate_parser(commands)
    add_preview_parser(commands)
    add_send_test_parser(commands)
    add_intake_parser(commands)
    add_import_parser(commands)
    add_coupons_parser(commands)
    add_catalog_parser(commands)
    add_suppressions_parser(commands)
    add_messages_parser(commands)
    add_customers_parser(commands)
    add_health_parser(commands)

    args = parser.parse_args(argv)
    if args.command == "health":
        return run_health(args)
    # The listener's flags are settings too, so that PUBLIC_URL's default follows them.
    listener = (
        {name: getattr(args, name) for name in ("host", "port") if getattr(args, name) is not None}
        if args.command == "serve"
        else {}
    )
    settings = load_settings(**listener)
    if settings is None:
        return CANNOT_START
    from app.ops.logging import configure_logging

    configure_logging(settings.log_format, level=settings.log_level)

    if args.command == "rules" and args.rules_command == "schema":
        from app.rules.schema import rules_json_schema

        print(json.dumps(rules_json_schema(), indent=2, ensure_ascii=False))
        return 0
    if args.command == "rules":
        return check_rules_command(settings, rules_dir=args.dir, templates_dir=args.templates)
    if args.command == "simulate":
        return run_simulation(settings, args)
    if args.command == "preview":
        return run_preview(settings, args)
    if args.command == "send-test":
        return run_send_test(settings, args)
    if args.command == "intake":
        return run_intake_replay(settings, args)
    if args.command == "import":
        return run_import(settings, args)
    if args.command == "coupons":
        return run_coupons(settings, args)
    if args.command == "catalog":
        return run_catalog(settings, args)
    if args.command == "suppressions":
        return run_suppressions(settings, args)
    if args.command == "messages":
        return run_messages(settings, args)
    if args.command == "customers":
        return run_customers(settings, args)
    if args.command == "db":
        upgrade_database(settings)
        return 0
    if (problem := rules_startup_problem(settings)) is not None:
        print(f"aftersale: configuration error: {problem}", file=sys.stderr)
        return CANNOT_START
    if args.role == "worker":
        asyncio.run(run_worker(settings))
        return 0
    if args.role == "inbound":
        return asyncio.run(run_inbound(settings))
    return serve_http(settings, role=args.role)


def rules_startup_problem(settings: Settings) -> str | None:
    """What the rules folder needs of the settings that they lack (checked again by every
    Runtime), said before a server starts rather than as a traceback from inside it."""
    from app.rules.loader import load_rules

    rules = load_rules(settings.rules_dir)
    return settings.rules_problem(marketing_rules=rules.marketing_rule_ids)


def load_settings(**overrides: object) -> Settings | None:
    """The settings (`overrides` win over the environment), or None after printing what is
    wrong with them on stderr."""
    from pydantic import ValidationError

    from app.config import Settings

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            print(f"aftersale: configuration error: {field}: {error['msg']}", file=sys.stderr)
        return None


def check_rules_command(
    settings: Settings, *, rules_dir: Path | None, templates_dir: Path | None
) -> int:
    from app.preview.lint import check_rules

    folder = rules_dir or settings.rules_dir
    errors = check_rules(
        folder,
        templates_dir=templates_dir or settings.templates_dir,
        default_locale=settings.default_locale,
        render_timeout=settings.render_timeout,
        bounds=settings.rules_bounds,
    )
    for error in errors:
        print(error)
    if errors:
        print(f"{len(errors)} error(s) in {folder}", file=sys.stderr)
        return 1
    print(f"{folder}: ok")
    return 0


def add_simulate_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from app.simulate.options import from_option, jobs_option, until_option

    parser = commands.add_parser(
        "simulate",
        help="replay orders offline through the rules and print what would be sent",
        description="Replay webhook bodies (one POST /webhooks/orders body per line) in time "
        "order through the planner and the send-time checks, offline, and print the timeline.",
    )
    parser.add_argument("orders", type=Path, metavar="ORDERS.jsonl")
    parser.add_argument("--rules", type=Path, help="rules folder (default: RULES_DIR)")
    parser.add_argument(
        "--from",
        dest="start",
        type=from_option,
        metavar="DATE",
        help="list messages sent from then (default: the first event); YYYY-MM-DD or ISO 8601",
    )
    parser.add_argument(
        "--until",
        type=until_option,
        metavar="DATE",
        help="stop then (default: a year after the last event); a bare date includes the day",
    )
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument(
        "--catalog",
        type=Path,
        metavar="PRODUCTS.jsonl",
        help="products (our JSON, one a line, as `aftersale catalog import` reads) that order "
        "items are resolved to, so rules see their categories, types, vendors and tags; "
        "rules with `recommend` pick from them",
    )
    parser.add_argument(
        "--jobs",
        type=jobs_option,
        metavar="N",
        help="processes to split the replay across, by customer (the same result); default: "
        "every core, with 2,500 lines or more each (1 under 5,000 lines); rules with learned "
        "intervals or recommendations use 1",
    )


def run_simulation(settings: Settings, args: argparse.Namespace) -> int:
    from app.catalog.recommendations import Weighting
    from app.simulate.command import simulate_command

    try:
        return simulate_command(
            orders=args.orders,
            rules_dir=args.rules or settings.rules_dir,
            start=args.start,
            until=args.until,
            output_format=args.format,
            default_time_zone=settings.default_time_zone,
            stdout=sys.stdout,
            stderr=sys.stderr,
            catalog=args.catalog,
            weighting=Weighting(
                half_life_days=settings.recommend_half_life_days,
                lookback_days=settings.recommend_lookback_days,
            ),
            cache_seconds=settings.recommend_cache_seconds,
            jobs=args.jobs,
            # The service holds a review's follow-ups this long (app/reviews/endpoints.py).
            review_hold=timedelta(seconds=settings.tracking_burst_seconds),
        )
    except BrokenPipeError:
        # `aftersale simulate ... | head`: the reader has what it wants. Point stdout at
        # /dev/null so that Python's last flush at exit does not fail as well.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def add_preview_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "preview",
        help="render a template for an order, as the dispatcher would; nothing is sent",
        description="Render TEMPLATE for the order and customer of an order.created webhook "
        "body (POST /webhooks/orders) and compose the message. Without --out, print the "
        "subject and the text part.",
    )
    parser.add_argument("template", metavar="TEMPLATE")
    parser.add_argument("--order", type=Path, required=True, metavar="ORDER.json")
    parser.add_argument("--locale", help="render for this locale instead of the customer's")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write subject.txt, body.txt, body.html and message.eml there",
    )
    parser.add_argument(
        "--rule",
        metavar="ID",
        help="the rule whose kind and items filter apply (default: the first that sends it)",
    )


def run_preview(settings: Settings, args: argparse.Namespace) -> int:
    from app.preview.command import preview_command

    return preview_command(
        settings=settings,
        template=args.template,
        order=args.order,
        locale=args.locale,
        out=args.out,
        rule_id=args.rule,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def add_send_test_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "send-test",
        help="send one [TEST] message of a rule through the configured SMTP server",
        description="Send RULE's email (its first variant's template) to ADDRESS through "
        "AFTERSALE_SMTP_URL, subject prefixed with [TEST], built from --order or from sample "
        "data. Exit 1 with the server's answer if it is not accepted.",
    )
    parser.add_argument("rule", metavar="RULE")
    parser.add_argument("--to", required=True, metavar="ADDRESS")
    parser.add_argument("--order", type=Path, metavar="ORDER.json", help="default: sample data")
    parser.add_argument("--locale", help="render for this locale instead of the customer's")


def run_send_test(settings: Settings, args: argparse.Namespace) -> int:
    from app.preview.command import send_test_command

    return send_test_command(
        settings=settings,
        rule_id=args.rule,
        to=args.to,
        order=args.order,
        locale=args.locale,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def add_intake_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("intake", help="webhook deliveries that could not be mapped")
    intake_commands = parser.add_subparsers(dest="intake_command", required=True)
    replay = intake_commands.add_parser(
        "replay",
        help="map and ingest a failed delivery again with the current code and rules",
        description="Replay intake failure ID (GET /api/v1/intake/failures), or every open "
        "one with --all. Exit 0 when it went through (or had before), 1 when one still "
        "fails (its error is updated), 2 when there is no such failure.",
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int, metavar="ID")
    which.add_argument("--all", action="store_true", help="every failure not replayed yet")


def run_intake_replay(settings: Settings, args: argparse.Namespace) -> int:
    from app.intake.command import replay_command

    return replay_command(
        settings=settings,
        failure_id=None if args.all else args.id,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def add_import_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "import",
        help="load past orders (no message is sent) so learned timing knows the history",
        description="Store the customers, orders and items of FILE and learn repurchase "
        "intervals from them, planning no message. Importing a file again changes nothing. "
        "Bad lines are reported with their numbers and do not stop the import (exit 1).",
    )
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument(
        "--format",
        dest="file_format",
        choices=["jsonl", "shopify-csv"],
        default="jsonl",
        help="jsonl: one POST /webhooks/orders body per line (default); shopify-csv: "
        "Shopify's Orders > Export CSV",
    )
    parser.add_argument(
        "--shop",
        help="the shop the orders belong to, as its webhooks name it (required for "
        "shopify-csv: the myshopify.com domain; default for jsonl: the shop of "
        "POST /webhooks/orders)",
    )


def run_import(settings: Settings, args: argparse.Namespace) -> int:
    from app.intake.history import import_command

    return import_command(
        settings=settings,
        path=args.file,
        file_format=args.file_format,
        shop=args.shop,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def add_coupons_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("coupons", help="coupon code pools for rules' `coupon:`")
    coupon_commands = parser.add_subparsers(dest="coupons_command", required=True)
    load = coupon_commands.add_parser(
        "import",
        help="add a CSV file of codes to a pool",
        description="Add the codes of FILE to POOL: one code per line, an optional header "
        "row `code`, an optional second column `expires_at` (ISO date or datetime). Codes "
        "already in the pool are left as they are, so importing again changes nothing. "
        "Refused lines are reported as FILE:LINE: message; exit 1 only if no line was valid.",
    )
    load.add_argument("pool", metavar="POOL", help="letters, digits, '-' and '_'")
    load.add_argument("file", type=Path, metavar="FILE")
    load.add_argument(
        "--shop",
        help="only for this shop's customers, as its webhooks name it (default: any shop)",
    )
    status = coupon_commands.add_parser(
        "status", help="codes per pool: total, free, assigned, redeemed, expired"
    )
    status.add_argument("pool", nargs="?", metavar="POOL", help="only this pool")


def run_coupons(settings: Settings, args: argparse.Namespace) -> int:
    from app.coupons.command import import_command, status_command

    if args.coupons_command == "import":
        return import_command(
            settings=settings,
            pool=args.pool,
            path=args.file,
            shop=args.shop,
            stdout=sys.stdout,
            stderr=sys.stderr,
        )
    return status_command(settings=settings, pool=args.pool, stdout=sys.stdout, stderr=sys.stderr)


def add_catalog_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("catalog", help="the product catalog (docs/catalog.md)")
    catalog_commands = parser.add_subparsers(dest="catalog_command", required=True)
    load = catalog_commands.add_parser(
        "import",
        help="add or update products from a file",
        description="Store the products of FILE in the catalog. Importing a file again "
        "changes nothing. Bad lines are reported as FILE:LINE: message and do not stop the "
        "import (exit 1).",
    )
    load.add_argument("file", type=Path, metavar="FILE")
    load.add_argument(
        "--format",
        dest="file_format",
        choices=["jsonl", "shopify-csv"],
        default="jsonl",
        help="jsonl: one product of PUT /api/v1/products per line (default); shopify-csv: "
        "Shopify's Products > Export CSV",
    )
    load.add_argument(
        "--shop",
        help="the shop the products belong to, as its webhooks name it (required for "
        "shopify-csv: the myshopify.com domain; default for jsonl: default)",
    )
    load.add_argument(
        "--platform",
        choices=["shopify", "woocommerce", "custom"],
        help="what the shop runs on, for reorder links (default: shopify for shopify-csv, "
        "else custom)",
    )
    load.add_argument("--currency", metavar="CODE", help="the currency of prices, e.g. EUR")


def run_catalog(settings: Settings, args: argparse.Namespace) -> int:
    from app.catalog.command import import_command

    return import_command(
        settings=settings,
        path=args.file,
        file_format=args.file_format,
        shop=args.shop,
        platform=args.platform,
        currency=args.currency,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def add_suppressions_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # No app.models here: `aftersale health` builds this parser too and must start fast.
    from app.simulate.options import from_option

    parser = commands.add_parser("suppressions", help="the list of addresses never mailed")
    suppression_commands = parser.add_subparsers(dest="suppressions_command", required=True)
    listing = suppression_commands.add_parser(
        "list",
        help="suppressed addresses, newest first (GET /api/v1/suppressions)",
        description="One page of the list, newest first, with the filters of "
        "GET /api/v1/suppressions. A full page ends with the --cursor of the next one.",
    )
    listing.add_argument("--email", help="only this address")
    listing.add_argument(
        "--reason", help="unsubscribe, unsubscribe_all, hard_bounce, complaint or manual"
    )
    listing.add_argument("--cursor", type=int, metavar="N", help="next_cursor of the last page")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="1 to 500 (50)")
    add_json_flag(listing, "the API's page: items and next_cursor")
    remove = suppression_commands.add_parser(
        "remove",
        help="allow mail to addresses again (one by one, or in bulk); each removal recorded",
        description="Remove the EMAIL addresses given, or every entry with --reason made "
        "since --since (and before --until). Prints how many were (with --dry-run: would be) "
        "removed per reason. Removing an old `unsubscribe` entry keeps marketing off for "
        "that address. Exit 1 when no address given was on the list.",
    )
    remove.add_argument("emails", nargs="*", metavar="EMAIL")
    remove.add_argument(
        "--reason", help="unsubscribe, unsubscribe_all, hard_bounce, complaint or manual"
    )
    remove.add_argument(
        "--since", type=from_option, help="entries made at or after (YYYY-MM-DD or ISO 8601)"
    )
    remove.add_argument("--until", type=from_option, help="entries made before")
    remove.add_argument("--dry-run", action="store_true", help="count only; change nothing")
    remove.add_argument("--note", help="why, kept with each removal record")
    add_json_flag(remove, "dry_run, removed and by_reason")


def run_suppressions(settings: Settings, args: argparse.Namespace) -> int:
    from app.suppressions.command import list_command, remove_command

    if args.suppressions_command == "list":
        return list_command(
            settings=settings,
            email=args.email,
            reason=args.reason,
            cursor=args.cursor,
            limit=args.limit,
            as_json=args.json,
            stdout=sys.stdout,
            stderr=sys.stderr,
        )
    return remove_command(
        settings=settings,
        emails=args.emails,
        reason=args.reason,
        since=args.since,
        until=args.until,
        dry_run=args.dry_run,
        note=args.note,
        stdout=sys.stdout,
        stderr=sys.stderr,
        as_json=args.json,
    )


def add_messages_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "messages", help="find, read and end messages (as the operator API does)"
    )
    message_commands = parser.add_subparsers(dest="messages_command", required=True)
    listing = message_commands.add_parser(
        "list",
        help="planned and sent messages, newest first (GET /api/v1/messages)",
        description="One page of messages, newest first, with the filters of "
        "GET /api/v1/messages. A full page ends with the --cursor of the next one.",
    )
    listing.add_argument("--email", help="the customer's address")
    listing.add_argument("--order-id", metavar="ID", help="the shop's order id")
    listing.add_argument("--rule", metavar="RULE", help="a rule id")
    listing.add_argument(
        "--status",
        help="scheduled, sending, sent, failed, cancelled, skipped, expired, held_out or paused",
    )
    listing.add_argument("--cursor", type=int, metavar="N", help="next_cursor of the last page")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="1 to 500 (50)")
    add_json_flag(listing, "the API's page: items and next_cursor")
    show = message_commands.add_parser(
        "show",
        help="one message and what happened to it",
        description="Print message ID and its timeline: when it was planned, each delivery "
        "attempt with the SMTP reply, when it was sent, its opens and clicks (human, machine "
        "or unknown, and why), bounce and complaint reports, and orders credited to it. "
        "Exit 1 when there is no such message.",
    )
    show.add_argument("id", type=int, metavar="ID", help="the message id (messages list)")
    add_json_flag(show, "the message as the API shows it, with attempt_log, engagement, ...")
    for action, text in (
        ("cancel", "cancel a scheduled message, or one stuck sending whose lease has expired"),
        ("fail", "fail a message stuck sending whose lease has expired"),
    ):
        command = message_commands.add_parser(
            action,
            help=text,
            description=text[0].upper()
            + text[1:]
            + ". A message under a live lease is refused (exit 1): it may be on the wire.",
        )
        command.add_argument(
            "id", type=int, metavar="ID", help="the message id (GET /api/v1/messages)"
        )
        add_json_flag(command, f"the message as POST /api/v1/messages/ID/{action} answers")


def run_messages(settings: Settings, args: argparse.Namespace) -> int:
    from app.outbox import command

    if args.messages_command == "list":
        return command.list_command(
            settings=settings,
            email=args.email,
            order_id=args.order_id,
            rule=args.rule,
            status=args.status,
            cursor=args.cursor,
            limit=args.limit,
            as_json=args.json,
            stdout=sys.stdout,
            stderr=sys.stderr,
        )
    if args.messages_command == "show":
        return command.show_command(
            settings=settings,
            message_id=args.id,
            as_json=args.json,
            stdout=sys.stdout,
            stderr=sys.stderr,
        )
    return command.end_command(
        settings=settings,
        message_id=args.id,
        action=args.messages_command,
        stdout=sys.stdout,
        stderr=sys.stderr,
        as_json=args.json,
    )


def add_customers_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "customers", help="privacy requests: export or erase what is held about a person"
    )
    customer_commands = parser.add_subparsers(dest="customers_command", required=True)
    export = customer_commands.add_parser(
        "export",
        help="everything held about a person (a data access request)",
        description="Summarise what is held about the person at --email (in every shop, or "
        "--shop's), or about the shop's customer ID; --json prints the document itself, as "
        "GET /api/v1/customers/export and /api/v1/customers/ID/export return it. Exit 1 "
        "when nothing is held.",
    )
    export.add_argument("id", nargs="?", metavar="ID", help="the shop's customer id")
    export.add_argument("--email", metavar="ADDRESS", help="the person's address, not an id")
    export.add_argument(
        "--shop", help="the shop (with ID: the id's shop, default `default`; with --email: only it)"
    )
    add_json_flag(export, "the whole export document")
    erase = customer_commands.add_parser(
        "erase",
        help="erase a customer's personal data and cancel their waiting mail",
        description="As DELETE /api/v1/customers/ID. Asks for the id to be typed back; "
        "without a terminal to ask on, refuses (exit 2) unless --yes. Exit 1 when there is "
        "no such customer.",
    )
    erase.add_argument("id", metavar="ID", help="the shop's customer id")
    erase.add_argument("--shop", help="the shop the id belongs to (default: default)")
    erase.add_argument("--yes", action="store_true", help="erase without asking")
    add_json_flag(erase, "the API's answer: erased and messages_cancelled")


def run_customers(settings: Settings, args: argparse.Namespace) -> int:
    from app.customers import command

    if args.customers_command == "export":
        return command.export_command(
            settings=settings,
            email=args.email,
            customer_id=args.id,
            shop=args.shop,
            as_json=args.json,
            stdout=sys.stdout,
            stderr=sys.stderr,
        )
    return command.erase_command(
        settings=settings,
        customer_id=args.id,
        shop=args.shop,
        yes=args.yes,
        as_json=args.json,
        stdin=sys.stdin,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def add_json_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--json", action="store_true", help=f"print JSON as the operator API answers: {what}"
    )


def upgrade_database(settings: Settings) -> None:
    from alembic import command
    from alembic.config import Config

    from app.config import ROOT

    # A checkout has alembic.ini beside app/; an installed package (Docker) has it in the cwd.
    ini = next(
        (
            folder / "alembic.ini"
            for folder in (ROOT, Path.cwd())
            if (folder / "alembic.ini").exists()
        ),
        None,
    )
    if ini is None:
        raise SystemExit("aftersale: alembic.ini not found beside app/ or in the current folder")
    config = Config(str(ini))
    config.attributes["database_url"] = settings.database_url
    command.upgrade(config, "head")


def add_health_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "health",
        help="exit 0 if the service in this container is alive (Docker HEALTHCHECK)",
        description="Healthy if URL answers 200 (roles api and all). If nothing listens there "
        "(role worker), healthy if the worker heartbeat file was written less than "
        "--max-age seconds ago. Otherwise exit 1 with the reason on stderr.",
    )
    parser.add_argument(
        "--url",
        type=http_url,
        help="default: /healthz where `serve` listens by AFTERSALE_HOST and AFTERSALE_PORT "
        "(or HOST and PORT), else http://127.0.0.1:8000/healthz",
    )
    parser.add_argument(
        "--heartbeat",
        type=Path,
        metavar="FILE",
        help="the worker heartbeat file (default: AFTERSALE_WORKER_HEARTBEAT_FILE)",
    )
    parser.add_argument("--max-age", type=float, default=60.0, metavar="SECONDS")


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {value!r}")
    return value


def run_health(args: argparse.Namespace) -> int:
    from app.listen import (
        DEFAULT_HOST,
        DEFAULT_PORT,
        HOST_VARIABLES,
        PORT_VARIABLES,
        from_environment,
        local_url,
    )

    # The environment decides, as it does for Settings; .env (read by Settings from the
    # working directory) only for what the environment lacks: Settings is half a second of
    # imports that a container's probe usually skips.
    heartbeat_variable = os.environ.get("AFTERSALE_WORKER_HEARTBEAT_FILE")
    host = from_environment(HOST_VARIABLES)
    port = from_environment(PORT_VARIABLES)
    settings: Settings | None = None
    if Path(".env").is_file() and (
        (args.heartbeat is None and heartbeat_variable is None)
        or (args.url is None and (host is None or port is None))
    ):
        settings = load_settings()
        if settings is None:
            return 1  # Docker reserves exit code 2
        host, port = settings.host, str(settings.port)
    heartbeat = args.heartbeat
    if heartbeat is None and heartbeat_variable is not None:
        heartbeat = Path(heartbeat_variable) if heartbeat_variable.strip() else None
    elif heartbeat is None and settings is not None:
        heartbeat = settings.worker_heartbeat_file
    port = port or str(DEFAULT_PORT)
    if args.url is None and not port.isdigit():
        print(f"unhealthy: PORT is not a port number: {port!r}", file=sys.stderr)
        return 1
    url = args.url or f"{local_url(host or DEFAULT_HOST, int(port))}/healthz"
    healthy, reason = check_health(url=url, heartbeat=heartbeat, max_age=args.max_age)
    print(
        f"{'healthy' if healthy else 'unhealthy'}: {reason}",
        file=sys.stdout if healthy else sys.stderr,
    )
    return 0 if healthy else 1


def check_health(
    *, url: str, heartbeat: Path | None, max_age: float, timeout: float = 2.0
) -> tuple[bool, str]:
    """(healthy, why) for this container: its HTTP server, or else its worker's heartbeat.

    Only "connection refused" (nothing listens: the worker role) falls back to the heartbeat;
    a server that answers anything but 200, or not in time, is unhealthy.
    """
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    # http.client, not urllib: no proxy from the environment gets between us and 127.0.0.1.
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target)
        status = connection.getresponse().status
    except ConnectionRefusedError:
        status = None
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{url} did not answer: {str(exc) or type(exc).__name__}"
    finally:
        connection.close()
    if status is not None:
        return status == 200, f"{url} answered HTTP {status}"
    nothing = f"no HTTP server on {url}"
    if heartbeat is None:
        return False, f"{nothing}, and no worker heartbeat file is set"
    try:
        # What app.worker.write_heartbeat writes: an ISO 8601 time with its offset.
        written = datetime.fromisoformat(heartbeat.read_text().strip())
        age = max((datetime.now(UTC) - written).total_seconds(), 0.0)
    except FileNotFoundError:
        return False, f"{nothing}, and worker heartbeat {heartbeat} does not exist"
    except (OSError, ValueError, TypeError) as exc:  # TypeError: a time without an offset
        return False, f"{nothing}, and worker heartbeat {heartbeat} is unreadable: {exc}"
    if age > max_age:
        return False, (
            f"{nothing}, and worker heartbeat {heartbeat} is {age:.0f} s old (max {max_age:g} s)"
        )
    return True, f"{nothing}; worker heartbeat {heartbeat} is {age:.0f} s old"


def serve_http(settings: Settings, *, role: str) -> int:
    """Serve HTTP on HOST:PORT until SIGTERM or Ctrl-C; 2 when the port cannot be had."""
    import uvicorn

    from app.main import create_app
    from app.ops.server import BannerServer, listening_socket

    # Bound before anything starts (the worker, the SMTP capture): a busy port is then one
    # line and exit code 2, not a traceback after the worker has already begun.
    try:
        listener = listening_socket(settings.host, settings.port)
    except OSError as exc:
        print(
            f"aftersale: cannot listen on {settings.host}:{settings.port}: "
            f"{exc.strerror or exc} (another aftersale running? choose a port: "
            f"PORT={settings.port + 1} make run, or serve --port {settings.port + 1})",
            file=sys.stderr,
        )
        return CANNOT_START
    app = create_app(settings, role="all" if role == "all" else "api")
    # uvicorn handles SIGTERM: stops accepting, then runs the lifespan shutdown (worker drain).
    # Its logs go through ours (log_config=None); its access log is replaced by ours, which
    # names routes instead of paths and query strings that can hold tokens and addresses.
    config = uvicorn.Config(
        app,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        timeout_keep_alive=settings.http_keepalive_seconds,
        log_config=None,
        access_log=False,
    )
    server = BannerServer(config, banner=startup_banner(settings, role=role))
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    return 0 if server.started else 1


def startup_banner(settings: Settings, *, role: str) -> list[str]:
    """The lines a person starting the service reads first: where everything is."""
    from app import version
    from app.listen import local_url

    base = local_url(settings.host, settings.port)
    lines = [f"aftersale {version()} ({settings.env}, role {role}) listening on {base}"]
    lines.append(f"  dashboard:  {base}/dashboard")
    if settings.is_development:
        lines.append(f"  dev outbox: {base}/dev/outbox")
    if settings.api_docs:
        lines.append(f"  API docs:   {base}/docs")
    lines.append(f"  webhooks:   {base}/webhooks/orders, /webhooks/shopify, /webhooks/woocommerce")
    if settings.public_url.rstrip("/") != base:
        lines.append(f"  links in mail point to PUBLIC_URL {settings.public_url}")
    return lines


async def run_worker(settings: Settings) -> None:
    from app.ops.metrics import start_worker_metrics_server
    from app.preview.lint import TemplateCheck
    from app.runtime import Runtime, freeze_startup_heap
    from app.worker import Worker

    start_worker_metrics_server(settings)
    runtime = Runtime.create(settings, templates=TemplateCheck.for_settings(settings))
    worker = Worker(runtime)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await worker.start()
    watcher = asyncio.create_task(runtime.rules.watch(interval=settings.rules_poll_interval))
    freeze_startup_heap()
    try:
        await stop.wait()
        log.info("stopping: finishing messages in flight")
    finally:
        watcher.cancel()
        await worker.stop()
        await runtime.close()


async def run_inbound(settings: Settings) -> int:
    """`serve --role inbound`: the SMTP listener for DSN and ARF mail, until SIGTERM."""
    from app.feedback.inbound import inbound_listener
    from app.preview.lint import TemplateCheck
    from app.runtime import Runtime

    runtime = Runtime.create(settings, templates=TemplateCheck.for_settings(settings))
    listener = inbound_listener(runtime)
    if listener is None:
        print("aftersale: --role inbound needs AFTERSALE_INBOUND_SMTP_PORT", file=sys.stderr)
        await runtime.close()
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await listener.start()
    try:
        await stop.wait()
    finally:
        await listener.stop()
        await runtime.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
