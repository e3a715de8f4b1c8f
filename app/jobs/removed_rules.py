"""Cancel the waiting messages of rules that a reload removed, with reason `rule_removed`.

Only a rule this process saw disappear in a good reload counts: a rules folder that is
missing or empty at start-up must not wipe out the whole schedule. (The dispatcher checks
again at send time, so a message of a rule that is gone is never sent either way.)
"""

from __future__ import annotations

import logging

from app.db import transaction
from app.outbox.repository import cancel_rules
from app.runtime import Runtime

log = logging.getLogger(__name__)


async def cancel_removed_rules(runtime: Runtime) -> int:
    source = runtime.rules
    removed = sorted(source.removed)
    if not removed:
        return 0
    async with transaction(runtime.session_factory) as session:
        cancelled = await cancel_rules(session, rule_ids=removed, now=runtime.clock.now())
    source.removed.difference_update(removed)
    log.info("rules removed: %s; cancelled %d waiting messages", ", ".join(removed), cancelled)
    return cancelled
