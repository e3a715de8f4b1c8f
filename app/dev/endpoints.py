"""`/dev/outbox`: the mail the built-in SMTP capture received. Mounted in development only.

A browser (asking for text/html) gets pages: the list, and each email rendered with tabs
for its HTML, its text and its headers. Anything else gets what it always got: the list as
JSON, an email as .eml. The HTML part is shown in a sandboxed frame, served with its own
policy: no script, images only over https (so the frame does not fetch our own open pixel
and count an open), framed by our pages only.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from app.api.deps import RuntimeDep
from app.console.access import CSP, HEADERS
from app.console.render import render
from app.dev.mail import open_mail
from app.mail.capture import list_captured, read_captured

router = APIRouter(prefix="/dev/outbox", tags=["development"])

# The mail page frames its HTML part: the console's policy, plus frames from here.
_MAIL_PAGE_HEADERS = HEADERS | {
    "Content-Security-Policy": CSP.replace(
        "default-src 'none';", "default-src 'none'; frame-src 'self';"
    )
}
_FRAMED_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src https: data:; "
    "style-src 'unsafe-inline'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
    "Cache-Control": "no-store",
    # The app's default answer header says DENY; this one is framed, by our pages alone.
    "X-Frame-Options": "SAMEORIGIN",
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No captured message of that name"}
}


def _wants_page(request: Request) -> bool:
    # Browsers ask for text/html first; curl, httpx and scripts send */* or JSON.
    return "text/html" in request.headers.get("accept", "")


@router.get(
    "",
    summary="Captured mail, newest first (a page for browsers)",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
async def captured_mail(request: Request, runtime: RuntimeDep) -> Any:
    folder = runtime.settings.dev_outbox_dir
    mails = await asyncio.to_thread(list_captured, folder)
    if _wants_page(request):
        body = render("dev_outbox.html", visit=None, here="", mails=mails, folder=str(folder))
        return HTMLResponse(body, headers=HEADERS)
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


async def _raw(runtime: RuntimeDep, name: str) -> bytes:
    try:
        return await asyncio.to_thread(read_captured, runtime.settings.dev_outbox_dir, name)
    except FileNotFoundError:
        raise HTTPException(404, "no such captured message") from None


@router.get(
    "/{name}",
    summary="One captured message as .eml (a page for browsers)",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": {}, "text/html": {}}}, **_NOT_FOUND},
)
async def captured_message(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    part: Literal["html", "text", "headers"] = "html",
) -> Response:
    raw = await _raw(runtime, name)
    if not _wants_page(request):
        return Response(raw, media_type="message/rfc822")
    mail = await asyncio.to_thread(open_mail, raw)
    if part == "html" and mail.html is None:
        part = "text"
    body = render("dev_mail.html", visit=None, here="", name=name, mail=mail, part=part)
    return HTMLResponse(body, headers=_MAIL_PAGE_HEADERS)


@router.get(
    "/{name}/raw",
    summary="One captured message as an .eml file to download",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": {}}}, **_NOT_FOUND},
)
async def captured_file(name: str, runtime: RuntimeDep) -> Response:
    raw = await _raw(runtime, name)
    return Response(
        raw,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/{name}/body.html",
    summary="The HTML part of a captured message, for the page's sandboxed frame",
    response_class=HTMLResponse,
    responses=_NOT_FOUND,
)
async def captured_html(name: str, runtime: RuntimeDep) -> HTMLResponse:
    mail = await asyncio.to_thread(open_mail, await _raw(runtime, name))
    if mail.html is None:
        raise HTTPException(404, "this message has no HTML part")
    return HTMLResponse(mail.html, headers=_FRAMED_HEADERS)
