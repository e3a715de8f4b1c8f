"""Every console page's routes, for app/main.py to mount (the stats page is the dashboard's)."""

from __future__ import annotations

from fastapi import APIRouter

from app.console import messages, queue

router = APIRouter()
router.include_router(queue.router)
router.include_router(messages.router)
