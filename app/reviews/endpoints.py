"""`/r/{token}`: one-click star links of review requests, their comment form; the reviews
and their stats for the shop.

Public like the survey's links (app/survey/endpoints.py, whose pages, headers and comment
reading these share): the signed token is the only credential; a bad one (tampered,
unknown, expired) or stars off 1-5 get the same 404 page and record nothing. GET records,
HEAD only says whether the link is good. `GET /api/v1/reviews` and
`GET /api/v1/stats/reviews` are API-key protected.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import API_KEY_RESPONSES, MAX_ROW_ID, ApiKeyDep, RuntimeDep, SessionDep
from app.lifecycle.flows import ReviewAnswered, review_answered, review_discarded
from app.orders.store import SqlStore
from app.reviews.links import review_texts
from app.reviews.repository import ReviewFilter, ReviewTarget
from app.reviews.schemas import ReviewPage, ReviewStats, ReviewStatsRow
from app.reviews.service import (
    CommentOutcome,
    add_comment,
    find_target,
    record_review,
    review_stats,
    reviews_page,
)
from app.reviews.tokens import SAMPLE_TOKEN
from app.runtime import Runtime
from app.stats.export import columns_of, csv_text
from app.survey.pages import page_language
from app.survey.responses import (
    COMMENT_FORM,
    answer_page,
    browser_language,
    comment_field,
    invalid_link,
    refused_comment,
    visit_of,
)
from app.survey.scales import SurveyKind
from app.survey.service import CommentProblem, comment_problem

router = APIRouter(prefix="/r", tags=["reviews"])
api_router = APIRouter(
    prefix="/api/v1", tags=["reviews"], dependencies=[ApiKeyDep], responses=API_KEY_RESPONSES
)
# Five stars are CSAT's 1-5 scale on the shared pages, with the product's own question.
_STARS = SurveyKind.CSAT
PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The page"},
    404: {"content": {"text/html": {}}, "description": "Not a valid token, or stars off 1-5"},
}
COMMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "Comment stored: thanks"},
    404: {
        "content": {"text/html": {}},
        "description": "Not a valid token, or no review of the item to comment on",
    },
    422: {
        "content": {"text/html": {}},
        "description": "An empty comment, or one too long: the form again",
    },
}


def _question(target: ReviewTarget | None, language: str) -> dict[str, str]:
    return review_texts(language, target.item.name if target else "this product")


@router.get(
    "/{token}",
    response_class=HTMLResponse,
    responses=PAGE_RESPONSES,
    summary="The stars of one product (`item.review_url` in mail); records nothing",
)
@router.head(
    "/{token}",
    response_class=HTMLResponse,
    responses=PAGE_RESPONSES,
    operation_id="review_choices_head",
    summary="The stars of one product",
)
async def choices(
    token: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> HTMLResponse:
    if token == SAMPLE_TOKEN:
        language = browser_language(request)
        return answer_page(
            "choose",
            language,
            token=token,
            sample=True,
            kind=_STARS,
            question=_question(None, language),
        )
    target = await find_target(
        session, token=token, settings=runtime.settings, now=runtime.clock.now()
    )
    if target is None:
        return invalid_link(request)
    language = page_language(target.locale)
    return answer_page(
        "choose", language, token=token, kind=_STARS, question=_question(target, language)
    )


@router.get(
    "/{token}/{stars}",
    response_class=HTMLResponse,
    responses=PAGE_RESPONSES,
    summary="Rate the product (one-click link in mail)",
)
@router.head(
    "/{token}/{stars}",
    response_class=HTMLResponse,
    responses=PAGE_RESPONSES,
    operation_id="review_answer_head",
    summary="Check a star link (records nothing)",
)
async def rate(
    token: str, stars: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> HTMLResponse:
    if stars not in ("1", "2", "3", "4", "5"):
        return invalid_link(request)
    value = int(stars)
    if token == SAMPLE_TOKEN:
        return answer_page(
            "thanks", browser_language(request), score=value, sample=True, kind=_STARS
        )
    now = runtime.clock.now()
    target = await find_target(session, token=token, settings=runtime.settings, now=now)
    if target is not None and request.method != "HEAD":
        recorded = await record_review(
            session,
            token=token,
            stars=value,
            visit=visit_of(request),
            settings=runtime.settings,
            now=now,
        )
        target = recorded[0] if recorded else None
        if recorded is not None and recorded[1] is not None:
            await _plan_follow_ups(runtime, session, recorded[1])
    if target is None:
        return invalid_link(request)
    return answer_page("thanks", page_language(target.locale), score=value, kind=_STARS)


async def _plan_follow_ups(runtime: Runtime, session: AsyncSession, answer: ReviewAnswered) -> None:
    """What the review plans, decided by the lifecycle core on the SQL store: a person's
    plans the review.answered rules (held for the burst window, in which a scanner is still
    told apart), a machine's cancels what it planned."""
    rules = runtime.rules.current
    store = SqlStore(session, shop="", default_time_zone=runtime.settings.default_time_zone)
    if answer.human:
        hold = timedelta(seconds=runtime.settings.tracking_burst_seconds)
        await review_answered(store, answer, rules=rules, hold=hold)
    else:
        await review_discarded(store, answer.review_id, rules=rules)


@router.post(
    "/{token}/comment",
    response_class=HTMLResponse,
    summary="Add a comment to the product's review",
    responses=COMMENT_RESPONSES,
    openapi_extra=COMMENT_FORM,
)
async def comment(
    token: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> HTMLResponse:
    text, complete = await comment_field(request)
    problem: CommentProblem | None = "too_long" if not complete else comment_problem(text)
    if token == SAMPLE_TOKEN:
        language = browser_language(request)
        if problem is not None:
            return refused_comment(language, problem, text, sample=True, kind=_STARS)
        return answer_page("commented", language, sample=True)
    settings, now = runtime.settings, runtime.clock.now()
    if problem is not None:
        target = await find_target(session, token=token, settings=settings, now=now)
        if target is None:
            return invalid_link(request)
        return refused_comment(page_language(target.locale), problem, text, kind=_STARS)
    result = await add_comment(session, token=token, comment=text, settings=settings, now=now)
    if result is None or result[1] == CommentOutcome.NO_REVIEW:
        return invalid_link(request)
    return answer_page("commented", page_language(result[0].locale))


Stars = Annotated[int | None, Query(ge=1, le=5)]


@api_router.get(
    "/reviews",
    response_model=ReviewPage,
    response_model_by_alias=True,
    summary="Product reviews and their comments, newest first",
    description="People's reviews unless `counted=false`; filter by product (its platform "
    "id or sku), stars and whether they carry a comment. Comments are personal data: erased "
    "with their customer.",
    responses={422: {"description": "min_stars above max_stars, or a bad parameter"}},
)
async def list_reviews(
    session: SessionDep,
    product: Annotated[str | None, Query(max_length=255)] = None,
    min_stars: Stars = None,
    max_stars: Stars = None,
    commented: Annotated[
        bool | None, Query(description="true: only with a comment; false: only without")
    ] = None,
    counted: Annotated[bool, Query(description="false: machine clicks too")] = True,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ReviewPage:
    if min_stars is not None and max_stars is not None and min_stars > max_stars:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "min_stars is above max_stars")
    where = ReviewFilter(
        product=product,
        min_stars=min_stars,
        max_stars=max_stars,
        commented=commented,
        counted_only=counted,
    )
    return await reviews_page(session, where=where, cursor=cursor, limit=limit)


@api_router.get(
    "/stats/reviews",
    response_model=ReviewStats,
    response_model_by_alias=True,
    summary="Product reviews: average, count and stars 1-5 per product or category",
    responses={
        200: {"content": {"text/csv": {}}},
        422: {"description": "`from` after `to`, or a date that is not YYYY-MM-DD"},
    },
)
async def get_review_stats(
    session: SessionDep,
    runtime: RuntimeDep,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    by: Annotated[Literal["product", "category"], Query()] = "product",
    format_: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Any:
    today = runtime.clock.now().date()
    last = last or today
    first = first or date(last.year, last.month, 1)
    if first > last:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "from is after to")
    result = await review_stats(session, first=first, last=last, by=by)
    if format_ == "csv":
        return Response(
            csv_text(list(result.rows), fields=columns_of(ReviewStatsRow)),
            media_type="text/csv; charset=utf-8",
        )
    return result
