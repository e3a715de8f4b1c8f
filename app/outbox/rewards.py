"""The thank-you for an answer: a rule's `survey.reward` mail, planned through the outbox.
The survey answer route hands `REWARDS` to app/survey/service.record_answer (survey does
not import the outbox, which imports survey for its links).

Planned once per surveyed message (its dedupe key), on the first answer a person gave, and
held for the burst window: a scanner that goes on to click other scores within it is
caught by the burst check (app/survey/service.py), which cancels the reward before it goes;
a person answering later schedules it again. Never sent twice: one row per message.
The mail goes under the derived `<rule>.reward` rule (app/rules/model.py), so the dispatcher
takes its code from the reward's pool and, with `when_empty: skip`, skips it when the pool
is empty, exactly as for a rule's own coupon. Functions flush; the caller commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.outbox.planned import cancel_pending, insert_planned, restore_cancelled
from app.planner.planner import planned_message
from app.rules.loader import RuleSet
from app.rules.model import REWARD_SUFFIX, reward_rule
from app.survey.repository import AnswerTarget

CANCEL_REASON = "survey_burst"


def reward_key(rule_id: str, message_id: int) -> str:
    """One reward per surveyed message, whatever repeats."""
    return f"{rule_id}{REWARD_SUFFIX}:survey:{message_id}"


async def plan_reward(
    session: AsyncSession,
    *,
    target: AnswerTarget,
    rules: RuleSet,
    now: datetime,
    hold: timedelta,
) -> bool:
    """Plan the reward of `target`'s survey, to go after `hold`; False when its rule has
    none (or is gone) or it was planned before."""
    rule = rules.by_id(target.rule_id)
    reward = reward_rule(rule) if rule is not None else None
    if reward is None:
        return False
    plan = planned_message(
        reward,
        send_at=now + hold,
        dedupe_key=reward_key(target.rule_id, target.message_id),
        customer_key=str(target.customer_id),
    )
    added = await insert_planned(
        session, [plan], customer_id=target.customer_id, order_id=target.order_id
    )
    if added:
        return True
    # Planned before: if a scanner's burst cancelled it, this person has earned it now.
    restored = await restore_cancelled(
        session, dedupe_key=plan.dedupe_key, reason=CANCEL_REASON, send_at=plan.send_at
    )
    return restored > 0


async def cancel_reward(session: AsyncSession, *, target: AnswerTarget) -> int:
    """The answers were a scanner's after all: the reward, if still waiting, does not go."""
    return await cancel_pending(
        session,
        reason=CANCEL_REASON,
        dedupe_keys=[reward_key(target.rule_id, target.message_id)],
    )


class OutboxRewards:
    """`app.survey.service.Rewards` on the outbox."""

    async def plan(
        self,
        session: AsyncSession,
        *,
        target: AnswerTarget,
        rules: RuleSet,
        now: datetime,
        hold: timedelta,
    ) -> bool:
        return await plan_reward(session, target=target, rules=rules, now=now, hold=hold)

    async def cancel(self, session: AsyncSession, *, target: AnswerTarget) -> int:
        return await cancel_reward(session, target=target)


REWARDS = OutboxRewards()
