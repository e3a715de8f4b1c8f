"""`/api/v1/rules`: what this process runs with, and a reload on demand."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.deps import API_KEY_RESPONSES, ApiKeyDep, RuntimeDep, SessionDep
from app.jobs.missing_rules import reconcile_missing_rules
from app.outbox.missing_rules import waiting_for_missing
from app.rules.source import RulesSource

router = APIRouter(
    prefix="/api/v1/rules", tags=["rules"], dependencies=[ApiKeyDep], responses=API_KEY_RESPONSES
)


class RuleOut(BaseModel):
    id: str
    name: str | None
    kind: str
    event: str
    template: str | None
    variants: list[str]
    holdout: float
    priority: int
    version: str


class LimitOut(BaseModel):
    max: int
    per: str


class RulesOut(BaseModel):
    version: str
    loaded: bool
    errors: list[str]
    rules: list[RuleOut]
    limits: dict[str, LimitOut]
    missing: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "rule ids missing from the loaded rules -> messages held for them (`paused`, "
            "`rule_missing`) until they come back or RULE_GRACE passes"
        ),
        examples=[{"restock-diapers": 12}],
    )


def _rules_out(source: RulesSource, missing: dict[str, int]) -> RulesOut:
    return RulesOut(
        version=source.current.version,
        loaded=source.loaded,
        errors=list(source.errors),
        rules=[
            RuleOut(
                id=rule.id,
                name=rule.name,
                kind=rule.kind,
                event=rule.when.event,
                template=rule.template,
                variants=[variant.label for variant in rule.variants or []],
                holdout=rule.holdout,
                priority=rule.priority,
                version=rule.version,
            )
            for rule in source.current.rules
        ],
        limits={
            kind: LimitOut(max=limit.max, per=limit.per)
            for kind, limit in source.current.limits.items()
        },
        missing=missing,
    )


@router.get("", response_model=RulesOut, summary="Loaded rules, their version and errors")
async def loaded_rules(runtime: RuntimeDep, session: SessionDep) -> RulesOut:
    return _rules_out(runtime.rules, await waiting_for_missing(session))


@router.post(
    "/reload",
    response_model=RulesOut,
    summary="Reload rules from RULES_DIR in this process",
    responses={422: {"description": "Errors found; the last good rules stay in use"}},
)
async def reload_rules(runtime: RuntimeDep, session: SessionDep) -> JSONResponse:
    applied = await asyncio.to_thread(runtime.rules.reload)
    if applied:
        await reconcile_missing_rules(runtime)
    missing = await waiting_for_missing(session)
    body = _rules_out(runtime.rules, missing).model_dump(mode="json")
    return JSONResponse(body, status_code=200 if applied else 422)
