"""`/dev/outbox`: the mail the built-in SMTP capture received. Mounted in development only."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Response

from app.api.deps import RuntimeDep
from app.mail.capture import list_captured, read_captured

router = APIRouter(prefix="/dev/outbox", tags=["development"])


@router.get("", summary="Captured mail, newest first")
async def captured_mail(runtime: RuntimeDep) -> list[dict[str, Any]]:
    folder = runtime.settings.dev_outbox_dir
    mails = await asyncio.to_thread(list_captured, folder)
    return [
        {
            "name": mail.name,
            "received_at": mail.received_at,
            "from": mail.from_,
            "to": mail.to,
            "subject": mail.subject,
            "size": mail.size,
            "url": f"/dev/outbox/{mail.name}",
        }
        for mail in mails
    ]


@router.get(
    "/{name}",
    summary="One captured message as .eml",
    response_class=Response,
    responses={
        200: {"content": {"message/rfc822": {}}},
        404: {"description": "No captured message of that name"},
    },
)
async def captured_message(name: str, runtime: RuntimeDep) -> Response:
    try:
        raw = await asyncio.to_thread(read_captured, runtime.settings.dev_outbox_dir, name)
    except FileNotFoundError:
        raise HTTPException(404, "no such captured message") from None
    return Response(raw, media_type="message/rfc822")
