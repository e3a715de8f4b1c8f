"""The stats API: overview, per rule and variant, per step of a sequence, per template, a
rule's timeseries, a message; NPS by rule, product category or month.

Every figure comes from the running totals the rollup job keeps (docs/stats.md), so answers
lag by up to a rollup interval plus a minute. `?format=csv` answers the rows as CSV.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel

from app.api.deps import API_KEY_RESPONSES, MAX_ROW_ID, ApiKeyDep, RuntimeDep, SessionDep
from app.stats import service
from app.stats.export import columns_of, csv_text
from app.stats.schemas import (
    EXAMPLE_FIGURES,
    Bucket,
    BucketRow,
    MessageStats,
    Overview,
    RuleRow,
    RulesStats,
    StepRow,
    StepsStats,
    TemplateRow,
    TemplatesStats,
    Timeseries,
)
from app.stats.service import Span
from app.survey.schemas import EXAMPLE_ROW, NpsBy, NpsRow, NpsStats
from app.survey.service import nps_report

router = APIRouter(
    prefix="/api/v1/stats",
    tags=["stats"],
    dependencies=[ApiKeyDep],
    responses=API_KEY_RESPONSES,
)

DEFAULT_DAYS = 30
MAX_BUCKETS = 1000

First = Annotated[
    date | None,
    Query(
        alias="from",
        description=f"first day (UTC), inclusive; default: {DEFAULT_DAYS - 1} days before `to`",
        examples=["2026-11-01"],
    ),
]
Last = Annotated[
    date | None,
    Query(
        alias="to", description="last day (UTC), inclusive; default: today", examples=["2026-11-30"]
    ),
]
Format = Annotated[
    Literal["json", "csv"],
    Query(
        alias="format",
        description="`csv`: the rows as CSV, the JSON fields as columns and revenue as one "
        "`revenue_<CURRENCY>` column per currency",
    ),
]


def _responses(example: BaseModel) -> dict[int | str, dict[str, Any]]:
    """The CSV answer in the OpenAPI schema, its example made the way answers are."""
    model = type(example)
    return {
        200: {
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": csv_text([example], fields=columns_of(model)),
                }
            }
        },
        422: {"description": "`from` after `to`, or a date that is not YYYY-MM-DD"},
    }


_SPAN_EXAMPLE = {"from": "2026-11-01", "to": "2026-11-30", "rolled_up_at": "2026-11-30T12:00:07Z"}


def _span(first: date | None, last: date | None, runtime: RuntimeDep) -> Span:
    last = last or runtime.clock.now().date()
    if first is None and last < date.min + timedelta(days=DEFAULT_DAYS):
        # The default span would start before year 1: there is nothing to count there.
        first = date.min
    span = Span(first, last) if first else Span.ending(last, days=DEFAULT_DAYS)
    if span.first > span.last:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "`from` is after `to`")
    return span


def _csv(rows: list[BaseModel], model: type[BaseModel]) -> Response:
    return Response(
        csv_text(rows, fields=columns_of(model)),
        media_type="text/csv; charset=utf-8",
    )


@router.get(
    "/overview",
    response_model=Overview,
    summary="Totals of all rules, or of one",
    responses=_responses(Overview.model_validate(_SPAN_EXAMPLE | EXAMPLE_FIGURES)),
)
async def get_overview(
    session: SessionDep,
    runtime: RuntimeDep,
    first: First = None,
    last: Last = None,
    rule: Annotated[
        str | None,
        Query(max_length=128, description="only this rule's messages (every variant and step)"),
    ] = None,
    format_: Format = "json",
) -> Any:
    result = await service.overview(session, span=_span(first, last, runtime), rule=rule)
    return _csv([result], Overview) if format_ == "csv" else result


@router.get(
    "/rules",
    response_model=RulesStats,
    summary="Figures per rule and variant",
    responses=_responses(
        RuleRow.model_validate(
            {"rule": "thank-you", "variant": None, "template": "thank-you"} | EXAMPLE_FIGURES
        )
    ),
)
async def get_rules(
    session: SessionDep,
    runtime: RuntimeDep,
    first: First = None,
    last: Last = None,
    format_: Format = "json",
) -> Any:
    result = await service.by_rule(session, span=_span(first, last, runtime))
    return _csv(list(result.rows), RuleRow) if format_ == "csv" else result


@router.get(
    "/steps",
    response_model=StepsStats,
    summary="Figures per rule, variant and step of its sequence",
    description="Like `/rules`, each row split by the messages' `step`: 1 is the rule's own "
    'message, 2... the messages of its `steps` (docs/rules.md, "Sequences"). The rows of '
    "a rule add up to its row in `/rules`.",
    responses=_responses(
        StepRow.model_validate(
            {"rule": "diapers-restock", "variant": None, "step": 2}
            | {"template": "diapers-restock-nudge"}
            | EXAMPLE_FIGURES
        )
    ),
)
async def get_steps(
    session: SessionDep,
    runtime: RuntimeDep,
    first: First = None,
    last: Last = None,
    format_: Format = "json",
) -> Any:
    result = await service.by_step(session, span=_span(first, last, runtime))
    return _csv(list(result.rows), StepRow) if format_ == "csv" else result


@router.get(
    "/templates",
    response_model=TemplatesStats,
    summary="Figures per template",
    responses=_responses(TemplateRow.model_validate({"template": "thank-you"} | EXAMPLE_FIGURES)),
)
async def get_templates(
    session: SessionDep,
    runtime: RuntimeDep,
    first: First = None,
    last: Last = None,
    format_: Format = "json",
) -> Any:
    result = await service.by_template(session, span=_span(first, last, runtime))
    return _csv(list(result.rows), TemplateRow) if format_ == "csv" else result


@router.get(
    "/rules/{rule}/timeseries",
    response_model=Timeseries,
    summary="A rule's figures per day or week",
    responses={
        **_responses(
            BucketRow.model_validate({"start": "2026-11-02", "end": "2026-11-08"} | EXAMPLE_FIGURES)
        ),
        404: {"description": "A rule that is neither loaded nor in the stats"},
    },
)
async def get_timeseries(
    rule: str,
    session: SessionDep,
    runtime: RuntimeDep,
    first: First = None,
    last: Last = None,
    bucket: Annotated[Bucket, Query(description="`day`, or ISO `week` (Monday to Sunday)")] = "day",
    variant: Annotated[
        str | None, Query(description="only this variant (its name); default: all summed")
    ] = None,
    format_: Format = "json",
) -> Any:
    span = _span(first, last, runtime)
    if len(service.buckets(span, bucket)) > MAX_BUCKETS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"more than {MAX_BUCKETS} buckets: a shorter span",
        )
    result = await service.timeseries(
        session,
        rule_id=rule,
        variant=variant,
        bucket=bucket,
        span=span,
        rule_is_loaded=runtime.rules.current.by_id(rule) is not None,
    )
    if result is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such rule")
    return _csv(list(result.rows), BucketRow) if format_ == "csv" else result


@router.get(
    "/nps",
    response_model=NpsStats,
    summary="NPS, loyalty index, CSAT, CES and response rate by rule, category or over time",
    description="From the survey answers (`{{ survey.links }}` in mail) to the messages of "
    "the span, each message's latest counted answer; read from the answers themselves, so "
    "there is no rollup lag. A category row counts an answer once for each distinct "
    "category of its order. The loyalty index and the response rate count the rules that "
    'declare a `survey` (docs/stats.md, "Surveys"). By `week` or `day` every bucket of the '
    "span has a row (null figures where nothing was sent or answered).",
    responses={
        **_responses(NpsRow.model_validate(EXAMPLE_ROW)),
        422: {
            "description": "`from` after `to`, a date that is not YYYY-MM-DD, an unknown `by`, "
            f"or more than {MAX_BUCKETS} days or weeks"
        },
    },
)
async def get_nps(
    session: SessionDep,
    runtime: RuntimeDep,
    first: First = None,
    last: Last = None,
    by: Annotated[
        NpsBy,
        Query(
            description="`rule`, product `category` of the order's items, or over time: "
            "`month`, ISO `week` (YYYY-Www, Monday to Sunday) or `day` (UTC)"
        ),
    ] = "rule",
    format_: Format = "json",
) -> Any:
    span = _span(first, last, runtime)
    if by in ("week", "day") and len(service.buckets(span, by)) > MAX_BUCKETS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"more than {MAX_BUCKETS} buckets: a shorter span",
        )
    result = await nps_report(
        session, first=span.first, last=span.last, by=by, rules=runtime.rules.current
    )
    return _csv(list(result.rows), NpsRow) if format_ == "csv" else result


@router.get(
    "/messages/{message_id}",
    response_model=MessageStats,
    summary="What the stats hold of one message",
    responses={404: {"description": "No such message, or not rolled up yet"}},
)
async def get_message(
    message_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], session: SessionDep
) -> MessageStats:
    found = await service.message_stats(session, message_id=message_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no stats for this message")
    return found
