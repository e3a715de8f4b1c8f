"""`/dashboard/answers`: survey answers and their comments, newest first, filtered by kind,
rule, score and comment, as `GET /api/v1/survey/answers` gives them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from app.api.deps import MAX_ROW_ID, RuntimeDep, SessionDep
from app.console.access import html, to_login, visit
from app.console.render import render
from app.survey.repository import AnswerFilter
from app.survey.service import answers_page

router = APIRouter(prefix="/dashboard", include_in_schema=False)
PAGE_SIZE = 50


def _score(value: str) -> int | None:
    """A score box of the form: empty is no bound; anything else must be 0 to 10."""
    if value.strip() == "":
        return None
    number = int(value)
    if not 0 <= number <= 10:
        raise ValueError(value)
    return number


@router.get("/answers", response_class=HTMLResponse)
async def answers(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    kind: Literal["nps", "csat", "ces", ""] = "",
    rule: Annotated[str, Query(max_length=128)] = "",
    min_score: Annotated[str, Query(max_length=4)] = "",
    max_score: Annotated[str, Query(max_length=4)] = "",
    commented: Literal["", "yes"] = "",
    cursor: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    form = {
        "kind": kind,
        "rule": rule,
        "min_score": min_score,
        "max_score": max_score,
        "commented": commented,
    }
    rules = sorted(loaded.id for loaded in runtime.rules.current.rules)
    error = None
    try:
        low, high = _score(min_score), _score(max_score)
    except ValueError:
        error = "Scores are whole numbers from 0 to 10."
    else:
        if low is not None and high is not None and low > high:
            error = "The lowest score is above the highest."
    if error is not None:
        body = render(
            "answers.html",
            visit=seen,
            here="/dashboard/answers",
            form=form,
            rules=rules,
            page=None,
            error=error,
        )
        return html(body, status.HTTP_422_UNPROCESSABLE_CONTENT)
    where = AnswerFilter(
        kind=kind or None,
        rule_id=rule or None,
        min_score=low,
        max_score=high,
        counted_only=True,
        commented=True if commented else None,
    )
    page = await answers_page(db, where=where, cursor=cursor, limit=PAGE_SIZE)
    body = render(
        "answers.html",
        visit=seen,
        here="/dashboard/answers",
        form=form,
        rules=rules,
        page=page,
        error=None,
    )
    return html(body)
