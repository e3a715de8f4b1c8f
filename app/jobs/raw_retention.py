"""Forget raw webhook bodies after `raw_payload_retention_days`; idempotent, so every worker
may run it.

Bodies are emptied, rows kept: their unique keys are what make a late retry of an old
delivery a duplicate. A body an unreplayed intake failure still needs is kept. Resolved
intake failures go once they were resolved that long ago.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from app.db import transaction
from app.intake import repository as intake_repository
from app.runtime import Runtime

log = logging.getLogger(__name__)

# Rows per transaction: short transactions, so intake never waits long on this job.
PAGE = 1000


@dataclass(frozen=True)
class Expired:
    bodies_emptied: int
    failures_deleted: int


async def expire_raw_payloads(runtime: Runtime) -> Expired:
    cutoff = runtime.clock.now() - timedelta(days=runtime.settings.raw_payload_retention_days)
    emptied = 0
    while True:
        async with transaction(runtime.session_factory) as session:
            ids = await intake_repository.expired_body_ids(
                session, received_before=cutoff, limit=PAGE
            )
            if ids:
                emptied += await intake_repository.empty_bodies(session, ids)
        if len(ids) < PAGE:
            break
    async with transaction(runtime.session_factory) as session:
        deleted = await intake_repository.delete_resolved_failures(session, resolved_before=cutoff)
    if emptied or deleted:
        log.info(
            "raw payload retention: emptied %d bodies, deleted %d resolved intake failures",
            emptied,
            deleted,
        )
    return Expired(bodies_emptied=emptied, failures_deleted=deleted)
