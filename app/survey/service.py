"""Survey answers: record a click on a 0-10 link, attach a comment, add answers up to NPS.

Services flush and never commit: the request that called them owns the transaction.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.ops.metrics import count_tracking_event
from app.rules.loader import RuleSet
from app.survey import repository
from app.survey.loyalty import LoyaltyTally, answers_tally, rule_tally
from app.survey.nps import NpsTally, is_score
from app.survey.repository import AnswerFilter, AnswerTarget, NpsGroup
from app.survey.scales import SurveyKind, scale_of
from app.survey.schemas import AnswerOut, AnswerPage, NpsBy, NpsRow, NpsStats
from app.survey.tokens import SurveyClaims, read_survey_token
from app.tracking.classify import EventClass, EventFacts, EventKind, classify, is_click_burst
from app.tracking.service import (
    MAX_USER_AGENT,
    Visit,
    anonymised_network,
    classify_thresholds,
    parse_ip,
)

MAX_COMMENT = 2000
CommentProblem = Literal["empty", "too_long"]


async def find_target(
    session: AsyncSession,
    *,
    token: str,
    settings: Settings,
    now: datetime,
    lock: bool = False,
) -> tuple[AnswerTarget, SurveyClaims] | None:
    """The message a token answers for and the token's claims (issue time, survey kind);
    None if it names none."""
    claims = read_survey_token(
        token,
        secrets=settings.survey_secrets,
        now=now,
        max_age=timedelta(days=settings.survey_link_days),
    )
    if claims is None:
        return None
    target = await repository.answer_target(session, claims.message_id, lock=lock)
    return None if target is None else (target, claims)


class Rewards(Protocol):
    """Plans and cancels a survey's reward mail (app/outbox/rewards.py, given by the route)."""

    async def plan(
        self,
        session: AsyncSession,
        *,
        target: AnswerTarget,
        rules: RuleSet,
        now: datetime,
        hold: timedelta,
    ) -> bool: ...

    async def cancel(self, session: AsyncSession, *, target: AnswerTarget) -> int: ...


async def record_answer(
    session: AsyncSession,
    *,
    token: str,
    score: int,
    visit: Visit,
    settings: Settings,
    now: datetime,
    rules: RuleSet | None = None,
    rewards: Rewards | None = None,
) -> AnswerTarget | None:
    """Store one answer with its kind, class and reason; None (nothing stored) for a bad
    token or a score off the token's scale.

    A burst is looked for after the insert, as with clicks: by then answers to the same
    message wait for each other, so even parallel scanner requests see one another.
    Given `rules` and `rewards`, a person's first answer plans the rule's survey reward; a
    burst cancels it while it waits.
    """
    if not is_score(score):
        return None
    found = await find_target(session, token=token, settings=settings, now=now, lock=True)
    if found is None or not scale_of(found[1].kind).fits(score):
        return None
    target, claims = found
    if target.customer_erased:
        return target  # thanked, but nothing about an erased customer is stored again
    # Not recorded as sent yet: the send is in flight, and the token was made just before.
    sent = target.sent_at or claims.issued_at
    facts = EventFacts(
        kind=EventKind.ANSWER,
        method=visit.method.upper(),
        user_agent=visit.user_agent[:MAX_USER_AGENT],
        ip=parse_ip(visit.ip),
        seconds_since_sent=max(0.0, (now - sent).total_seconds()),
    )
    thresholds = classify_thresholds(settings)
    event_class, reason = classify(facts, thresholds)
    await repository.add_answer(
        session,
        message_id=target.message_id,
        score=score,
        kind=claims.kind,
        event_class=event_class,
        reason=reason,
        answered_at=now,
        user_agent=facts.user_agent.strip() or None,
        ip=anonymised_network(facts.ip),
    )
    since = now - timedelta(seconds=thresholds.burst_seconds)
    others = await repository.other_scores_since(
        session, message_id=target.message_id, score=score, since=since
    )
    if is_click_burst(others, thresholds):
        await repository.mark_survey_burst(session, message_id=target.message_id, since=since)
        if rewards is not None:
            await rewards.cancel(session, target=target)
    elif rules is not None and rewards is not None and event_class == EventClass.HUMAN:
        # A person, as far as can be told yet; held for the burst window in case not.
        await rewards.plan(
            session,
            target=target,
            rules=rules,
            now=now,
            hold=timedelta(seconds=thresholds.burst_seconds),
        )
    count_tracking_event(EventKind.ANSWER.value, event_class.value)
    return target


class CommentOutcome(enum.Enum):
    STORED = "stored"
    NO_ANSWER = "no_answer"
    DISCARDED = "discarded"  # the customer was erased: thanked, nothing stored


async def add_comment(
    session: AsyncSession, *, token: str, comment: str, settings: Settings, now: datetime
) -> tuple[AnswerTarget, CommentOutcome] | None:
    """Put `comment` on the message's latest answer (a later comment replaces it); None for
    a bad token. The caller has checked the comment (`comment_problem`)."""
    found = await find_target(session, token=token, settings=settings, now=now, lock=True)
    if found is None:
        return None
    target, _ = found
    if target.customer_erased:
        return target, CommentOutcome.DISCARDED
    answer_id = await repository.latest_answer_id(session, message_id=target.message_id)
    if answer_id is None:
        return target, CommentOutcome.NO_ANSWER
    await repository.set_comment(session, answer_id=answer_id, comment=comment, commented_at=now)
    return target, CommentOutcome.STORED


def comment_problem(comment: str) -> CommentProblem | None:
    """Why a comment cannot be stored ("empty", "too_long"), or None."""
    if not comment.strip():
        return "empty"
    if len(comment) > MAX_COMMENT:
        return "too_long"
    return None


# -- NPS of a span --------------------------------------------------------------------------


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


async def nps_tallies(
    session: AsyncSession,
    *,
    first: date,
    last: date,
    group_by: Sequence[NpsGroup] = (),
    rule_id: str | None = None,
) -> dict[tuple[Any, ...], NpsTally]:
    """NPS tallies of the messages of [first, last] (whole UTC days, on the message's day),
    by the values of `group_by` (`()`: one tally, under the key `()`)."""
    rows = await repository.standing_scores(
        session,
        start=day_start(first),
        end=day_start(last + timedelta(days=1)),
        group_by=group_by,
        rule_id=rule_id,
    )
    tallies: defaultdict[tuple[Any, ...], NpsTally] = defaultdict(NpsTally)
    for key, score, messages in rows:
        tallies[key] = tallies[key].add(score, times=messages)
    return dict(tallies)


async def loyalty_tallies(
    session: AsyncSession,
    *,
    first: date,
    last: date,
    group_by: Sequence[NpsGroup],
    rules: RuleSet,
) -> dict[tuple[Any, ...], LoyaltyTally]:
    """Loyalty tallies (ELI, response rate, CSAT, CES) of the messages of [first, last] by
    the values of `group_by`. Each rule's silent are weighted by its current `silent_weight`:
    a coefficient of the analysis, so a changed weight applies to the past too."""
    weights = {
        rule.id: Decimal(str(rule.survey.silent_weight))
        for rule in rules.rules
        if rule.survey is not None
    }
    start, end = day_start(first), day_start(last + timedelta(days=1))
    by_rule: tuple[NpsGroup, ...] = (*group_by, *(() if "rule" in group_by else ("rule",)))
    rule_at = by_rule.index("rule")
    answers = await repository.standing_scores(
        session,
        start=start,
        end=end,
        group_by=(*by_rule, "kind"),
        kinds=[kind.value for kind in SurveyKind],
    )
    reached = await repository.reached_surveys(
        session, start=start, end=end, group_by=by_rule, rule_ids=weights
    )
    parts: defaultdict[tuple[Any, ...], tuple[int, list[tuple[str, int, int]]]] = defaultdict(
        lambda: (0, [])
    )
    for values, count in reached:
        parts[values] = (count, parts[values][1])
    for grouped, score, count in answers:
        parts[grouped[:-1]][1].append((grouped[-1], score, count))
    tallies: defaultdict[tuple[Any, ...], LoyaltyTally] = defaultdict(LoyaltyTally)
    for values, (count, scored) in parts.items():
        rule_id = values[rule_at]
        if rule_id in weights:
            part = rule_tally(reached=count, answers=scored, silent_weight=weights[rule_id])
        else:  # no declared survey: its CSAT and CES answers count, but not towards ELI
            part = sum(
                (answers_tally(k, s, times=n, in_survey=False) for k, s, n in scored),
                LoyaltyTally(),
            )
        key = tuple(value for index, value in enumerate(values) if by_rule[index] in group_by)
        tallies[key] = tallies[key] + part
    return dict(tallies)


async def nps_report(
    session: AsyncSession,
    *,
    first: date,
    last: date,
    by: NpsBy,
    rules: RuleSet | None = None,
) -> NpsStats:
    """NPS and the loyalty figures of the messages of [first, last] by rule, product
    category, month, ISO week or day (UTC). Without `rules`, no rule declares a survey: no
    ELI. By week or day every bucket of the span has a row, answered or not (a chart's
    gaps); by month, only months with answers or surveys."""
    group: NpsGroup = "day" if by == "week" else by
    tallies = await nps_tallies(session, first=first, last=last, group_by=(group,))
    loyalty = await loyalty_tallies(
        session,
        first=first,
        last=last,
        group_by=(group,),
        rules=rules or RuleSet(rules=(), version=""),
    )
    keys = {*tallies, *(key for key, tally in loyalty.items() if tally.shows)}
    if by in ("week", "day"):
        bucket = _week_of if by == "week" else str
        tallies = _rebucketed(tallies, bucket, NpsTally())
        loyalty = _rebucketed(loyalty, bucket, LoyaltyTally())
        keys = {(bucket(day.isoformat()),) for day in _days(first, last)}
    rows = []
    for key in sorted(keys, key=lambda item: (item[0] is None, item[0] or "")):
        tally, extra = tallies.get(key, NpsTally()), loyalty.get(key, LoyaltyTally())
        rows.append(
            NpsRow(
                key=key[0],
                responses=tally.responses,
                promoters=tally.promoters,
                passives=tally.passives,
                detractors=tally.detractors,
                nps=tally.nps,
                surveys=extra.reached,
                answered=extra.answered,
                response_rate=extra.response_rate,
                positive=extra.positive,
                neutral=extra.neutral,
                negative=extra.negative,
                silent=extra.silent,
                eli=extra.eli,
                csat=extra.csat,
                csat_responses=extra.csat_responses,
                ces=extra.ces,
                ces_responses=extra.ces_responses,
            )
        )
    return NpsStats.model_validate({"from": first, "to": last, "by": by, "rows": rows})


_Tally = TypeVar("_Tally", NpsTally, LoyaltyTally)


def _rebucketed(
    by_day: Mapping[tuple[Any, ...], _Tally], bucket: Callable[[str], str], zero: _Tally
) -> dict[tuple[Any, ...], _Tally]:
    """Day tallies (keyed by "YYYY-MM-DD") added up per bucket."""
    found: dict[tuple[Any, ...], _Tally] = {}
    for (day,), tally in by_day.items():
        key = (bucket(day),)
        found[key] = found.get(key, zero) + tally
    return found


def _week_of(day: str) -> str:
    """The ISO week of a "YYYY-MM-DD" day, as "YYYY-Www" (Monday to Sunday)."""
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


async def answers_page(
    session: AsyncSession, *, where: AnswerFilter, cursor: int | None, limit: int
) -> AnswerPage:
    """A page of answers, newest first, with their comments (`GET /api/v1/survey/answers`)."""
    rows = await repository.list_answers(session, where=where, before_id=cursor, limit=limit)
    items = [
        AnswerOut.model_validate(
            {
                "id": answer.id,
                "message_id": answer.message_id,
                "rule": rule_id,
                "variant": variant,
                "kind": answer.kind,
                "score": answer.score,
                "side": scale_of(answer.kind).side(answer.score).value,
                "class": answer.class_,
                "reason": answer.reason,
                "answered_at": answer.answered_at,
                "comment": answer.comment,
                "commented_at": answer.commented_at,
            }
        )
        for answer, rule_id, variant in rows
    ]
    return AnswerPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)
