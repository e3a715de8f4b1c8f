"""Every console page's routes, for app/main.py to mount (the stats page is the dashboard's)."""

from __future__ import annotations

from fastapi import APIRouter

from app.console import answers, catalog, intake, messages, people, queue, rules, suppressions

router = APIRouter()
router.include_router(queue.router)
router.include_router(messages.router)
router.include_router(rules.router)
router.include_router(answers.router)
router.include_router(catalog.router)
router.include_router(intake.router)
router.include_router(people.router)
router.include_router(suppressions.router)
