"""The ingest benchmark's baseline: a bare FastAPI endpoint that stores the body in one row.

No signature, no validation, no planning: what any webhook receiver must at least do.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from sqlalchemy import Column, Integer, MetaData, Table, Text
from sqlalchemy.ext.asyncio import create_async_engine

metadata = MetaData()
raw = Table("bare_raw", metadata, Column("id", Integer, primary_key=True), Column("body", Text))
engine = create_async_engine(os.environ["BARE_DATABASE_URL"], pool_size=20, max_overflow=20)


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
