"""The baselines of the ingest and tracking benchmarks: bare FastAPI endpoints, one row each.

`POST /ingest` stores the body: no signature, no validation, no planning, what any webhook
receiver must at least do. `GET /o/{token}` and `GET /c/{token}` store the token and the
user agent and answer a 1x1 GIF or a 302: what any open pixel or click redirect must do.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import Column, Integer, MetaData, Table, Text
from sqlalchemy.ext.asyncio import create_async_engine

metadata = MetaData()
raw = Table("bare_raw", metadata, Column("id", Integer, primary_key=True), Column("body", Text))
hits = Table(
    "bare_hits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token", Text),
    Column("user_agent", Text),
)
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# The pool ours has (app/db.py): overflow connections, closed again after each burst, would
# handicap the baseline with connection churn that ours does not have.
engine = create_async_engine(os.environ["BARE_DATABASE_URL"], pool_size=20, max_overflow=0)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
        await connection.run_sync(metadata.create_all)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.post("/ingest")
async def ingest(request: Request) -> dict[str, str]:
    body = (await request.body()).decode()
    async with engine.begin() as connection:
        await connection.execute(raw.insert().values(body=body))
    return {"status": "accepted"}


async def _store_hit(token: str, request: Request) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            hits.insert().values(token=token, user_agent=request.headers.get("user-agent", ""))
        )


@app.get("/o/{token}")
async def open_pixel(token: str, request: Request) -> Response:
    await _store_hit(token, request)
    return Response(PIXEL_GIF, media_type="image/gif")


@app.get("/c/{token}")
async def click(token: str, request: Request) -> Response:
    await _store_hit(token, request)
    return RedirectResponse("https://shop.example/", status_code=302)
