"""Keep the queue in step with the loaded rules without ever losing it to an edit.

Messages of a rule missing from the loaded set are held (`paused`, `rule_missing`); when the
rule comes back they are scheduled again at their own send time; a rule that says
`renamed_from` takes over the old id's waiting messages; what has been held for RULE_GRACE
is cancelled (`rule_removed`). The grace counts from `paused_at`, when the message was held
(by this job within a poll of the rule going, or by the dispatcher meeting it first).

Only a rule set that loaded decides anything: a rules folder that is missing or broken at
start-up, or a reload with errors (the last good set stays), changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.db import transaction
from app.outbox import missing_rules
from app.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconciled:
    moved: int = 0
    duplicates: int = 0
    resumed: int = 0
    paused: int = 0
    cancelled: int = 0


async def reconcile_missing_rules(runtime: Runtime) -> Reconciled:
    source = runtime.rules
    if not source.loaded:
        return Reconciled()
    rules = source.current.rules
    # A survey's reward mail is sent under a rule derived from it: live while the rule is.
    live = source.current.sending_rule_ids
    renames = {old: rule.id for rule in rules for old in rule.renamed_from}
    now = runtime.clock.now()
    version = source.current.version
    takeover, paused = missing_rules.Takeover(), 0
    async with transaction(runtime.session_factory) as session:
        # The scans of the whole queue only when the rules changed (or on start); the
        # dispatcher holds any message it meets without its rule meanwhile.
        if version != source.queue_version:
            takeover = await missing_rules.take_over_renamed(session, renames=renames, now=now)
        # Every time (only held rows are read): a message another process held, its rules
        # a step behind, is not left to the grace.
        resumed = await missing_rules.resume_returned(session, live=live, now=now)
        if version != source.queue_version:
            paused = await missing_rules.pause_missing(session, live=live, now=now)
        cancelled = await missing_rules.cancel_paused_before(
            session, before=now - runtime.settings.rule_grace, now=now
        )
    source.queue_version = version
    done = Reconciled(takeover.moved, takeover.duplicates, resumed, paused, cancelled)
    if done != Reconciled():
        # Counts only: rule ids are the shop's, never a person's.
        log.info(
            "rules and queue reconciled: %d taken over by renamed rules (%d already there), "
            "%d resumed, %d held for a missing rule, %d cancelled after the grace",
            *(done.moved, done.duplicates, done.resumed, done.paused, done.cancelled),
        )
    return done
