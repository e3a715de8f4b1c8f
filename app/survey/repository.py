"""All SQL of surveys: the message a token names, answers and comments, NPS reads."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Customer, Message, MessageStatus, OrderItem, StatsMessage, SurveyAnswer
from app.survey.nps import COUNTED_CLASSES
from app.tracking.classify import EventClass, Reason

# Rows an IN (...) list may name at once: well below either database's parameter limit.
_CHUNK = 1000


@dataclass(frozen=True)
class AnswerTarget:
    message_id: int
    sent_at: datetime | None
    locale: str | None
    customer_erased: bool
    rule_id: str
    customer_id: int
    order_id: int | None


async def answer_target(
    session: AsyncSession, message_id: int, *, lock: bool = False
) -> AnswerTarget | None:
    """The message a survey token names, with its customer's locale (for the page).

    `lock` holds the message row until the transaction ends (PostgreSQL; SQLite serializes
    writers anyway), so answers to one message are recorded one after another and a burst
    of parallel scanner requests sees itself.
    """
    statement = (
        select(
            Message.id,
            Message.sent_at,
            Customer.locale,
            Customer.deleted_at.is_not(None),
            Message.rule_id,
            Message.customer_id,
            Message.order_id,
        )
        .join(Customer, Customer.id == Message.customer_id)
        .where(Message.id == message_id)
    )
    if lock:
        statement = statement.with_for_update(of=Message)
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else AnswerTarget(*row)


async def add_answer(
    session: AsyncSession,
    *,
    message_id: int,
    score: int,
    kind: str,
    event_class: EventClass,
    reason: Reason,
    answered_at: datetime,
    user_agent: str | None,
    ip: str | None,
) -> int:
    answer = SurveyAnswer(
        message_id=message_id,
        score=score,
        kind=kind,
        class_=event_class.value,
        reason=reason.value,
        answered_at=answered_at,
        user_agent=user_agent,
        ip=ip,
    )
    session.add(answer)
    await session.flush()
    return answer.id


async def other_scores_since(
    session: AsyncSession, *, message_id: int, score: int, since: datetime
) -> int:
    """How many different scores, other than `score`, the message got since `since`."""
    return int(
        (
            await session.execute(
                select(func.count(func.distinct(SurveyAnswer.score))).where(
                    SurveyAnswer.message_id == message_id,
                    SurveyAnswer.answered_at >= since,
                    SurveyAnswer.score != score,
                )
            )
        ).scalar_one()
    )


async def mark_survey_burst(session: AsyncSession, *, message_id: int, since: datetime) -> None:
    """Every answer of the message since `since` was a scanner's, the earlier ones too."""
    await session.execute(
        update(SurveyAnswer)
        .where(
            SurveyAnswer.message_id == message_id,
            SurveyAnswer.answered_at >= since,
            SurveyAnswer.class_ != EventClass.MACHINE.value,
        )
        .values(class_=EventClass.MACHINE.value, reason=Reason.SURVEY_BURST.value)
        .execution_options(synchronize_session=False)
    )


async def latest_answer_id(session: AsyncSession, *, message_id: int) -> int | None:
    """The answer a comment belongs to: the latest counted one, else the latest at all."""
    counted = SurveyAnswer.class_.in_(COUNTED_CLASSES)
    found = await session.execute(
        select(SurveyAnswer.id)
        .where(SurveyAnswer.message_id == message_id)
        .order_by(counted.desc(), SurveyAnswer.answered_at.desc(), SurveyAnswer.id.desc())
        .limit(1)
    )
    return found.scalar_one_or_none()


async def set_comment(
    session: AsyncSession, *, answer_id: int, comment: str, commented_at: datetime
) -> None:
    await session.execute(
        update(SurveyAnswer)
        .where(SurveyAnswer.id == answer_id)
        .values(comment=comment, commented_at=commented_at)
        .execution_options(synchronize_session=False)
    )


# What NPS can be grouped by: a column of the message, its UTC day or month, the
# categories of its order's items (one row per distinct category; null for none), or the
# answer's survey kind.
NpsGroup = Literal["rule", "variant", "step", "template", "day", "month", "category", "kind"]


async def standing_scores(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    group_by: Sequence[NpsGroup],
    rule_id: str | None = None,
    kinds: Sequence[str] = ("nps",),
) -> list[tuple[tuple[Any, ...], int, int]]:
    """(group values, score, messages) for the messages of [start, end) (sent in it, or due
    if never sent), each counted once with its standing answer: its latest counted one.
    Only answers of `kinds` (NPS by default: a CSAT 5 is no promoter); group by "kind" to
    tell them apart.

    An answer comes after its message, so `answered_at >= start` bounds the read by the
    answers index; the latest answer is picked and the rows are counted in SQL, so what
    comes back is at most 11 rows per group, however many answers there are.
    """
    ranked = (
        select(
            SurveyAnswer.message_id,
            SurveyAnswer.score,
            SurveyAnswer.kind,
            func.row_number()
            .over(
                partition_by=SurveyAnswer.message_id,
                order_by=(SurveyAnswer.answered_at.desc(), SurveyAnswer.id.desc()),
            )
            .label("rank"),
        )
        .where(
            SurveyAnswer.answered_at >= start,
            SurveyAnswer.class_.in_(COUNTED_CLASSES),
            SurveyAnswer.kind.in_(kinds),
        )
        .subquery()
    )
    counted_at = func.coalesce(Message.sent_at, Message.send_at)
    dialect = session.get_bind().dialect.name
    statement = (
        select()
        .select_from(ranked)
        .join(Message, Message.id == ranked.c.message_id)
        .where(ranked.c.rank == 1, counted_at >= start, counted_at < end)
    )
    statement, columns = _grouped_by(
        statement, group_by, moment=counted_at, dialect=dialect, kind=ranked.c.kind
    )
    if rule_id is not None:
        statement = statement.where(Message.rule_id == rule_id)
    statement = statement.add_columns(*columns, ranked.c.score, func.count()).group_by(
        *columns, ranked.c.score
    )
    rows = await session.execute(statement)
    width = len(columns)
    return [(tuple(row[:width]), int(row[width]), int(row[width + 1])) for row in rows]


def _grouped_by(
    statement: Select[Any], group_by: Sequence[NpsGroup], *, moment: Any, dialect: str, kind: Any
) -> tuple[Select[Any], list[Any]]:
    """The statement joined to what `group_by` needs, and the columns to group by."""
    columns: list[Any] = []
    for group in group_by:
        if group == "kind":
            columns.append(kind)
        elif group == "category":
            categories = (
                select(OrderItem.order_id, OrderItem.category)
                .where(OrderItem.category.is_not(None))
                .distinct()
                .subquery()
            )
            statement = statement.outerjoin(categories, categories.c.order_id == Message.order_id)
            columns.append(categories.c.category)
        elif group in ("day", "month"):
            columns.append(_utc_date_text(moment, dialect, 10 if group == "day" else 7))
        else:
            columns.append(
                {
                    "rule": Message.rule_id,
                    "variant": Message.variant,
                    "step": Message.step,
                }.get(group, Message.template)
            )
    return statement, columns


async def reached_surveys(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    group_by: Sequence[NpsGroup],
    rule_ids: Collection[str],
) -> list[tuple[tuple[Any, ...], int]]:
    """(group values, messages) of the surveys that reached their customer in [start, end):
    the rules' messages sent then, less those whose hard bounce came back later."""
    if not rule_ids:
        return []
    dialect = session.get_bind().dialect.name
    statement = (
        select()
        .select_from(Message)
        .outerjoin(StatsMessage, StatsMessage.message_id == Message.id)
        .where(
            Message.rule_id.in_(list(rule_ids)),
            Message.status == MessageStatus.SENT,
            Message.sent_at >= start,
            Message.sent_at < end,
            func.coalesce(StatsMessage.bounced_async, false()).is_(false()),
        )
    )
    statement, columns = _grouped_by(
        statement, group_by, moment=Message.sent_at, dialect=dialect, kind=None
    )
    rows = await session.execute(
        statement.add_columns(*columns, func.count(func.distinct(Message.id))).group_by(*columns)
    )
    width = len(columns)
    return [(tuple(row[:width]), int(row[width])) for row in rows]


def _utc_date_text(moment: Any, dialect: str, length: int) -> Any:
    """`YYYY-MM-DD` (10) or `YYYY-MM` (7) of a UTC datetime column."""
    if dialect == "sqlite":
        # UtcDateTime stores UTC as text, "YYYY-MM-DD HH:MM:SS.ffffff".
        return func.substr(moment, 1, length)
    # The UTC wall time, whatever the session's time zone.
    utc = func.timezone("UTC", moment)
    return func.to_char(utc, "YYYY-MM-DD" if length == 10 else "YYYY-MM")


@dataclass(frozen=True)
class AnswerFilter:
    """Which answers `list_answers` reads; None is no condition."""

    kind: str | None = None
    rule_id: str | None = None
    min_score: int | None = None
    max_score: int | None = None
    counted_only: bool = True
    commented: bool | None = None


async def list_answers(
    session: AsyncSession, *, where: AnswerFilter, before_id: int | None, limit: int
) -> list[tuple[SurveyAnswer, str, str | None]]:
    """(answer, rule id, variant), newest first, `limit` at most, ids below `before_id`."""
    statement = (
        select(SurveyAnswer, Message.rule_id, Message.variant)
        .join(Message, Message.id == SurveyAnswer.message_id)
        .order_by(SurveyAnswer.id.desc())
        .limit(limit)
    )
    conditions = [
        (where.kind is not None, SurveyAnswer.kind == where.kind),
        (where.rule_id is not None, Message.rule_id == where.rule_id),
        (where.min_score is not None, SurveyAnswer.score >= (where.min_score or 0)),
        (where.max_score is not None, SurveyAnswer.score <= (where.max_score or 0)),
        (where.counted_only, SurveyAnswer.class_.in_(COUNTED_CLASSES)),
        (where.commented is True, SurveyAnswer.comment.is_not(None)),
        (where.commented is False, SurveyAnswer.comment.is_(None)),
        (before_id is not None, SurveyAnswer.id < (before_id or 0)),
    ]
    for applies, condition in conditions:
        if applies:
            statement = statement.where(condition)
    rows = await session.execute(statement)
    return [(answer, rule_id, variant) for answer, rule_id, variant in rows]


async def answers_of_messages(
    session: AsyncSession, message_ids: Sequence[int]
) -> list[SurveyAnswer]:
    """Every answer to these messages, oldest first (the customer export)."""
    answers: list[SurveyAnswer] = []
    for start in range(0, len(message_ids), _CHUNK):
        rows = await session.execute(
            select(SurveyAnswer)
            .where(SurveyAnswer.message_id.in_(message_ids[start : start + _CHUNK]))
            .order_by(SurveyAnswer.answered_at, SurveyAnswer.id)
        )
        answers.extend(rows.scalars())
    return answers
