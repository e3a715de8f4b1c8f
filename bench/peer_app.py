"""The peer benchmark's baseline: the same intake built the way an APScheduler tutorial does it.

A FastAPI app whose lifespan starts an APScheduler 3 `AsyncIOScheduler` (the tutorial choice
for an asyncio web app) with `SQLAlchemyJobStore` as its default job store, and which adds
one `date` job per planned email. Per order it does what ours does at its core: verifies our
HMAC signature (app/intake/signature.py, same header and secret), parses the body with our
schema, upserts the customer and stores the order in its own two tables (one transaction),
plans with our pure planner and rules (so the send times are the same), then calls
`scheduler.add_job(send_email, "date", run_date=…, id=…, args=[…])` for each message. The
job just records the send in `peer_sends`.

Not crippled: same engine settings as ours (app.db.create_engine: pool 10 + 10 overflow,
pre-ping, SQLite WAL), the job store's engine gets the same pool sizes, and uvicorn runs with
the same settings as `aftersale serve`. It does less than ours: no raw delivery record, no
send-time checks at intake, no learned gaps across customers, no conversions.

What APScheduler 3 does, untouched: `add_job` is synchronous, so each job's INSERT (psycopg,
its own transaction) runs on the event loop, and each added job wakes the scheduler, which
then queries the job store for due jobs and the next run time, also on the loop. Jobs are
added after the order's commit: the two stores cannot share a transaction. Scheduler
defaults are kept: misfire_grace_time 1 s (a job found more than 1 s late is dropped as
missed), coalesce on (irrelevant to a one-off date job).

Environment: PEER_DATABASE_URL (async, for its tables), PEER_JOBSTORE_URL (sync, for
SQLAlchemyJobStore), PEER_RULES_DIR. `GET /peer/stats` reports sends, jobs waiting and the
jobs missed since this process started (EVENT_JOB_MISSED).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI, HTTPException, Request
from pydantic import ValidationError
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from app.config import DEV_WEBHOOK_SECRET
from app.db import create_engine
from app.events import OrderPlaced, parse_body
from app.intake import signature
from app.models import MessageStatus, OrderStatus
from app.planner.learned import PastOrder
from app.planner.planner import History, plan_order_event
from app.rules.facts import CustomerFacts, ItemFacts, OrderFacts
from app.rules.loader import load_rules

SHOP = "default"  # ours files webhooks under this shop: the same customer keys, variants
SECRET = os.environ.get("PEER_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)
# app.db.create_engine's pool, for the job store.
POOL = {"pool_size": 20, "max_overflow": 0, "pool_use_lifo": True}

metadata = MetaData()
customers = Table(
    "peer_customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(255), nullable=False, unique=True),
    Column("email", String(320), nullable=False),
    Column("first_name", String(200)),
    Column("locale", String(35)),
    Column("time_zone", String(64)),
    Column("marketing_consent", Boolean, nullable=False),
    Column("attributes", JSON, nullable=False),
)
orders = Table(
    "peer_orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(255), nullable=False, unique=True),
    Column("customer_id", ForeignKey("peer_customers.id"), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("total", String(32), nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("items", JSON, nullable=False),
)
sends = Table(
    "peer_sends",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", String(191), nullable=False),
    Column("email", String(320), nullable=False),
    Column("template", String(100), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
)

engine = create_engine(os.environ["PEER_DATABASE_URL"])
insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
rules = load_rules(Path(os.environ["PEER_RULES_DIR"]))
jobstore_url = os.environ["PEER_JOBSTORE_URL"]
scheduler = AsyncIOScheduler(
    jobstores={
        "default": SQLAlchemyJobStore(
            url=jobstore_url, engine_options={} if jobstore_url.startswith("sqlite") else POOL
        )
    },
    timezone=UTC,
)
missed = 0


def count_missed(_event: JobExecutionEvent) -> None:
    global missed
    missed += 1


async def send_email(job_id: str, email: str, template: str) -> None:
    """The job: a real app would render and send here; the benchmark records the send."""
    async with engine.begin() as connection:
        await connection.execute(
            sends.insert().values(
                job_id=job_id, email=email, template=template, sent_at=datetime.now(UTC)
            )
        )


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    scheduler.add_listener(count_missed, EVENT_JOB_MISSED)
    scheduler.start()
    yield
    scheduler.shutdown()
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.post("/webhooks/orders")
async def receive_order(request: Request) -> dict[str, Any]:
    body = await request.body()
    try:
        signature.verify(
            secret=SECRET,
            timestamp_header=request.headers.get("x-aftersale-timestamp"),
            signature_header=request.headers.get("x-aftersale-signature"),
            body=body,
            now=time.time(),
        )
    except signature.SignatureError as exc:
        raise HTTPException(401, str(exc)) from None
    try:
        event = parse_body(body)
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False)) from None
    if not isinstance(event, OrderPlaced):
        return {"status": "ignored", "event_id": event.id}
    customer, order = event.customer, event.order
    async with engine.begin() as connection:
        customer_values = {
            "email": str(customer.email).lower(),
            "first_name": customer.first_name,
            "locale": customer.locale,
            "time_zone": customer.time_zone,
            "marketing_consent": customer.marketing_consent,
            "attributes": customer.attributes,
        }
        customer_id = await connection.scalar(
            insert(customers)
            .values(external_id=customer.id, **customer_values)
            .on_conflict_do_update(index_elements=["external_id"], set_=customer_values)
            .returning(customers.c.id)
        )
        past = (
            await connection.execute(
                select(orders.c.placed_at, orders.c["items"]).where(
                    orders.c.customer_id == customer_id
                )
            )
        ).all()
        items = [item.model_dump(mode="json") for item in order.items]
        order_id = await connection.scalar(
            insert(orders)
            .values(
                external_id=order.id,
                customer_id=customer_id,
                currency=order.currency,
                total=str(order.total),
                placed_at=order.created_at,
                items=items,
            )
            .on_conflict_do_nothing(index_elements=["external_id"])
            .returning(orders.c.id)
        )
    if order_id is None:
        return {"status": "duplicate", "event_id": event.id}
    history = [PastOrder(placed_at=_aware(at), items=_facts(stored)) for at, stored in past]
    planned = plan_order_event(
        event=event.type,
        occurred_at=event.occurred_at,
        order=OrderFacts(
            id=order_id,
            status=OrderStatus.OPEN,
            placed_at=order.created_at,
            items=_facts(items),
            total=order.total,
            currency=order.currency,
            first_order=not any(earlier.placed_at < order.created_at for earlier in history),
        ),
        customer_id=customer_id,
        rules=rules,
        tz=ZoneInfo(customer.time_zone or "UTC"),
        customer=CustomerFacts(
            birthday=customer.birthday,
            attributes=customer.attributes,
            locale=customer.locale,
            country=customer.country,
            tags=tuple(customer.tags),
            key=f"{SHOP}:{customer.id}",
        ),
        history=History(orders=history),
    )
    scheduled = [plan for plan in planned if plan.status == MessageStatus.SCHEDULED]
    for plan in scheduled:
        # The tutorial way: one persistent job per email, its id the dedupe key so a
        # replayed webhook replaces the job instead of adding a second one.
        scheduler.add_job(
            send_email,
            "date",
            run_date=plan.send_at,
            id=plan.dedupe_key,
            args=[plan.dedupe_key, customer_values["email"], plan.template],
            replace_existing=True,
        )
    return {"status": "accepted", "event_id": event.id, "messages_planned": len(scheduled)}


@app.get("/peer/stats")
async def stats() -> dict[str, int]:
    async with engine.connect() as connection:
        sent = await connection.scalar(select(func.count()).select_from(sends))
    return {"sent": sent or 0, "waiting": len(scheduler.get_jobs()), "missed": missed}


def _facts(items: list[dict[str, Any]]) -> tuple[ItemFacts, ...]:
    return tuple(
        ItemFacts(
            sku=item.get("sku"),
            category=item.get("category"),
            quantity=item.get("quantity", 1),
            unit_price=Decimal(item["unit_price"]) if item.get("unit_price") else None,
            tags=tuple(item.get("tags", ())),
            attributes=item.get("attributes", {}),
        )
        for item in items
    )


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were stored as UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
