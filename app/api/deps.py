"""FastAPI dependencies shared by every router: the runtime, a transaction, the API key."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.runtime import Runtime


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` one in a worker
# thread, a hand-off that costs more than the work on every request.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """The request owns the transaction: commit when the endpoint returns, roll back on error."""
    async with runtime.session_factory() as session, session.begin():
        yield session


# scope="function": commit before the response starts, so a 2xx always means stored.
# (FastAPI's default runs the exit code after the response has begun.)
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key from AFTERSALE_API_KEYS")


def require_api_key(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    found = api_key_status(credentials.credentials, runtime.settings)
    if found == "revoked":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "API key revoked")
    if found == "invalid":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "Bearer"}
        )


KeyStatus = Literal["valid", "revoked", "invalid"]


def api_key_status(given: str, settings: Settings) -> KeyStatus:
    """Whether `given` is one of API_KEYS, in REVOKED_API_KEYS (which wins), or neither.

    The operator API and the dashboard's login both ask this.
    """
    raw = given.encode()
    # Both lists are compared in full whatever the key: no early exit for timing to reveal.
    revoked = _matches_any(raw, settings.revoked_api_keys)
    valid = _matches_any(raw, settings.api_keys)
    if revoked:
        return "revoked"
    return "valid" if valid else "invalid"


def _matches_any(given: bytes, keys: list[str]) -> bool:
    matched = False
    for key in keys:  # no early exit: timing reveals nothing
        matched |= hmac.compare_digest(given, key.encode())
    return matched


ApiKeyDep = Depends(require_api_key)


async def refuse_nul_in_url(request: Request) -> None:
    """422 for a NUL character in a path or query parameter: PostgreSQL text cannot hold
    one (the query would fail with a 500), and no id, address or filter has one."""
    for where, values in (("path", request.path_params), ("query", request.query_params)):
        for name, value in values.items():
            if "\x00" in name or "\x00" in str(value):
                raise RequestValidationError(
                    [
                        {
                            "type": "value_error",
                            "loc": (where, name.replace("\x00", "")),
                            "msg": "Value error, NUL characters are not allowed",
                            "input": str(value),
                        }
                    ]
                )


RefuseNulInUrl = Depends(refuse_nul_in_url)

# The largest id a BIGINT column holds: a larger one names no row and does not fit a query.
MAX_ROW_ID = 2**63 - 1
# FastAPI's answer to a JSON body it cannot decode (not UTF-8); malformed JSON is a 422.
JSON_BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body could not be read (not UTF-8)"}
}
# What every route behind the API key may answer before it runs: give it to the router with
# the dependency, so the OpenAPI schema documents it (`APIRouter(..., responses=...)`).
API_KEY_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    403: {"description": "Revoked API key"},
}
