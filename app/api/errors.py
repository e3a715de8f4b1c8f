"""The 422 answer of every endpoint: each error's field path, type and message, never the
value that was sent.

FastAPI's default answer echoes each bad value (`input`) and its context: a webhook body
full of names and addresses, up to 1 MiB of it, back to whoever sent it and into any proxy
log; and a non-finite number there (`NaN`) cannot even be written as JSON, so the answer
itself failed with a 500.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def error_details(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "type": str(error.get("type", "value_error")),
            "loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
        }
        for error in errors
    ]


def validation_error_response(errors: Iterable[Mapping[str, Any]]) -> JSONResponse:
    return JSONResponse(
        {"detail": error_details(errors)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_error_response(exc.errors())


def add_validation_errors(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
