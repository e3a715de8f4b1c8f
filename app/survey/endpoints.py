"""`/s/{token}/{score}`: the one-click survey answers in mail, and their comment form.

Public, like the tracking and unsubscribe links: the signed token is the only credential.
A bad token (tampered, unknown, expired) or a score off the token's scale (NPS 0-10, CSAT
1-5, CES 1-7: the kind is signed in the token) gets the same 404 page and records nothing.
GET records an answer (scanners that follow links are classified, see docs/tracking.md)
and, on a person's first answer, plans the rule's survey reward; HEAD only says whether
the link is good: HTTP calls it safe, and no person answers with it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse

from app.api.deps import API_KEY_RESPONSES, MAX_ROW_ID, ApiKeyDep, RuntimeDep, SessionDep
from app.outbox.rewards import REWARDS
from app.survey.pages import page_language
from app.survey.repository import AnswerFilter, AnswerTarget
from app.survey.responses import (
    COMMENT_FORM,
    COMMENT_RESPONSES,
    PAGE_RESPONSES,
    answer_page,
    browser_language,
    comment_field,
    invalid_link,
    refused_comment,
    visit_of,
)
from app.survey.scales import scale_of
from app.survey.schemas import AnswerPage
from app.survey.service import (
    CommentOutcome,
    CommentProblem,
    add_comment,
    answers_page,
    comment_problem,
    find_target,
    record_answer,
)
from app.survey.tokens import SAMPLE_TOKENS

router = APIRouter(prefix="/s", tags=["survey"])
# The answers for the shop: API-key protected, unlike the links above.
api_router = APIRouter(
    prefix="/api/v1/survey",
    tags=["survey"],
    dependencies=[ApiKeyDep],
    responses=API_KEY_RESPONSES,
)

_SCORE = re.compile(r"10|[0-9]")


# GET and HEAD are registered apart so that each has its own OpenAPI operation id.
@router.get(
    "/{token}",
    response_class=HTMLResponse,
    summary="The answers of a survey (`survey.url` in mail); records nothing",
    responses=PAGE_RESPONSES,
)
@router.head(
    "/{token}",
    response_class=HTMLResponse,
    summary="The answers of a survey; records nothing",
    responses=PAGE_RESPONSES,
    operation_id="survey_choices_head",
)
async def choices(
    token: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> HTMLResponse:
    if token in SAMPLE_TOKENS:
        kind = SAMPLE_TOKENS[token]
        return answer_page("choose", browser_language(request), token=token, sample=True, kind=kind)
    found = await find_target(
        session, token=token, settings=runtime.settings, now=runtime.clock.now()
    )
    if found is None:
        return invalid_link(request)
    return answer_page("choose", page_language(found[0].locale), token=token, kind=found[1].kind)


@router.get(
    "/{token}/{score}",
    response_class=HTMLResponse,
    summary="Answer the survey (one-click link in mail)",
    responses=PAGE_RESPONSES,
)
@router.head(
    "/{token}/{score}",
    response_class=HTMLResponse,
    summary="Check a survey link (records nothing)",
    responses=PAGE_RESPONSES,
    operation_id="survey_answer_head",
)
async def answer(
    token: str, score: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> HTMLResponse:
    if not _SCORE.fullmatch(score):
        return invalid_link(request)
    value = int(score)
    if token in SAMPLE_TOKENS:  # a preview's link: shows the page, records nothing
        kind = SAMPLE_TOKENS[token]
        if not scale_of(kind).fits(value):
            return invalid_link(request)
        language = browser_language(request)
        return answer_page("thanks", language, score=value, sample=True, kind=kind)
    now = runtime.clock.now()
    # The kind is signed in the token: the scale is read before anything is recorded.
    found = await find_target(session, token=token, settings=runtime.settings, now=now)
    if found is None or not scale_of(found[1].kind).fits(value):
        return invalid_link(request)
    kind = found[1].kind
    target: AnswerTarget | None = found[0]
    if request.method != "HEAD":
        target = await record_answer(
            session,
            token=token,
            score=value,
            visit=visit_of(request),
            settings=runtime.settings,
            now=now,
            rules=runtime.rules.current,
            rewards=REWARDS,
        )
    if target is None:
        return invalid_link(request)
    return answer_page("thanks", page_language(target.locale), score=value, kind=kind)


@router.post(
    "/{token}/comment",
    response_class=HTMLResponse,
    summary="Add a comment to the survey answer",
    responses=COMMENT_RESPONSES,
    openapi_extra=COMMENT_FORM,
)
async def comment(
    token: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> HTMLResponse:
    text, complete = await comment_field(request)
    problem: CommentProblem | None = "too_long" if not complete else comment_problem(text)
    if token in SAMPLE_TOKENS:
        language = browser_language(request)
        if problem is not None:
            return refused_comment(language, problem, text, sample=True, kind=SAMPLE_TOKENS[token])
        return answer_page("commented", language, sample=True)
    settings, now = runtime.settings, runtime.clock.now()
    if problem is not None:
        found = await find_target(session, token=token, settings=settings, now=now)
        if found is None:
            return invalid_link(request)
        return refused_comment(page_language(found[0].locale), problem, text, kind=found[1].kind)
    result = await add_comment(session, token=token, comment=text, settings=settings, now=now)
    if result is None or result[1] == CommentOutcome.NO_ANSWER:
        return invalid_link(request)
    return answer_page("commented", page_language(result[0].locale))


Score = Annotated[int | None, Query(ge=0, le=10)]


@api_router.get(
    "/answers",
    response_model=AnswerPage,
    response_model_by_alias=True,
    summary="Survey answers and their comments, newest first",
    description="Counted answers (a person's, or an unclassified client's) unless "
    "`counted=false`; filter by kind, rule, score range and whether they carry a comment. "
    "Comments are personal data: erased with their customer.",
    responses={422: {"description": "min_score above max_score, or a bad parameter"}},
)
async def list_answers(
    session: SessionDep,
    kind: Annotated[Literal["nps", "csat", "ces"] | None, Query()] = None,
    rule: Annotated[str | None, Query(max_length=128)] = None,
    min_score: Score = None,
    max_score: Score = None,
    commented: Annotated[
        bool | None, Query(description="true: only with a comment; false: only without")
    ] = None,
    counted: Annotated[bool, Query(description="false: machine answers too")] = True,
    cursor: Annotated[
        int | None,
        Query(ge=1, le=MAX_ROW_ID, description="next_cursor of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AnswerPage:
    if min_score is not None and max_score is not None and min_score > max_score:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "min_score is above max_score")
    where = AnswerFilter(
        kind=kind,
        rule_id=rule,
        min_score=min_score,
        max_score=max_score,
        counted_only=counted,
        commented=commented,
    )
    return await answers_page(session, where=where, cursor=cursor, limit=limit)
