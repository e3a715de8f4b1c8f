"""What the public answer pages (survey links, review stars) send back, shared by their
routes: the page with its headers, the one 404 for every bad link, a refused comment, the
comment form's body read within its size, and the visit as the classifier sees it."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import Request, status
from fastapi.responses import HTMLResponse

from app.mail.languages import accepted_languages
from app.survey.pages import Page, page_language, render_page
from app.survey.service import MAX_COMMENT, CommentProblem
from app.tracking.service import Visit

# A form-encoded comment of MAX_COMMENT characters takes at most 12 bytes each (a 4-byte
# character, percent-encoded); anything longer is refused unread.
MAX_BODY = MAX_COMMENT * 12 + 1024
PAGE_HEADERS = {
    # Answers must reach us to be counted, and a page with a token is for nobody to keep.
    "Cache-Control": "no-store",
    # The token in the URL must not leak to other sites through the Referer header.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The thank-you page"},
    404: {
        "content": {"text/html": {}},
        "description": "Not a valid token (tampered, unknown, expired), or a score off its scale",
    },
}
# The comment form's body as the API description shows it (the review pages post the same).
COMMENT_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"comment": {"type": "string", "maxLength": MAX_COMMENT}},
                    "required": ["comment"],
                }
            }
        },
    }
}
COMMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "Comment stored: thanks"},
    404: {
        "content": {"text/html": {}},
        "description": "Not a valid token, or the message has no answer to comment on",
    },
    422: {
        "content": {"text/html": {}},
        "description": f"An empty comment, or one over {MAX_COMMENT} characters: the form again",
    },
}


def visit_of(request: Request) -> Visit:
    return Visit(
        method=request.method,
        user_agent=request.headers.get("user-agent", ""),
        ip=request.client.host if request.client else None,
    )


def browser_language(request: Request) -> str:
    return page_language(*accepted_languages(request.headers.get("accept-language", "")))


def answer_page(
    page: Page, language: str, *, status_code: int = 200, **values: Any
) -> HTMLResponse:
    return HTMLResponse(
        render_page(page, language=language, **values),
        status_code=status_code,
        headers=PAGE_HEADERS,
    )


def invalid_link(request: Request) -> HTMLResponse:
    # One answer for every bad link: nothing to learn from it. No customer to ask, so the
    # browser's languages.
    return answer_page("invalid", browser_language(request), status_code=status.HTTP_404_NOT_FOUND)


def refused_comment(
    language: str, problem: CommentProblem, text: str, *, sample: bool = False, kind: str
) -> HTMLResponse:
    return answer_page(
        "thanks",
        language,
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        problem=problem,
        comment=text[:MAX_COMMENT],
        sample=sample,
        kind=kind,
    )


async def comment_field(request: Request) -> tuple[str, bool]:
    """The form's `comment` (newlines as "\\n"), and False when the body was too big to read."""
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            return "", False
    fields = parse_qs(data.decode("utf-8", "replace"), keep_blank_values=True)
    values = fields.get("comment") or [""]
    # Browsers send a textarea's line breaks as CRLF; its maxlength counts them as one.
    return values[0].replace("\r\n", "\n").replace("\r", "\n"), True
