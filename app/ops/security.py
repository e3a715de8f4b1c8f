"""HTTP hardening: security headers on HTML, the public links' rate limit, /metrics access."""

from __future__ import annotations

import hmac
import ipaddress
import math
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.deps import RuntimeDep
from app.ops.ratelimit import ClientRateLimiter

# Our pages run no script and load nothing from elsewhere. A page that needs more (/docs
# runs our own scripts) opts in by sending its own Content-Security-Policy.
HTML_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HTML_HEADERS = {
    "Content-Security-Policy": HTML_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeadersMiddleware:
    """Add `HTML_HEADERS` to every text/html answer, each only where the answer has none:
    a page's own header (the preview's CSP, the unsubscribe page's) is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").lower().startswith("text/html"):
                    for name, value in HTML_HEADERS.items():
                        if name not in headers:
                            headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def limit_public_rate(request: Request) -> None:
    """429 with Retry-After once a client IP is over PUBLIC_RATE_PER_MINUTE (per process)."""
    limiter: ClientRateLimiter | None = getattr(request.app.state, "public_rate_limiter", None)
    if limiter is None:
        return
    wait = await limiter.take(request.client.host if request.client else "unknown")
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many requests",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


PublicRateLimit = Depends(limit_public_rate)
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many requests from this client; retry after Retry-After seconds"}
}

_metrics_bearer = HTTPBearer(
    auto_error=False, description="AFTERSALE_METRICS_TOKEN; none needed from localhost"
)


def require_metrics_access(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_metrics_bearer)],
) -> None:
    """Loopback clients (a local Prometheus or agent) need nothing; others the metrics token.

    The token is its own setting, not an API key: Prometheus keeps it in its config, and an
    API key there could cancel mail and erase customers.
    """
    if _is_loopback(request.client.host if request.client else None):
        return
    token = runtime.settings.metrics_token
    if token is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "metrics are served to localhost only; set AFTERSALE_METRICS_TOKEN for others",
        )
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong metrics token",
            headers={"WWW-Authenticate": "Bearer"},
        )


MetricsAccess = Depends(require_metrics_access)


def _is_loopback(host: str | None) -> bool:
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
