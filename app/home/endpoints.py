"""`/` leads to the dashboard; `/docs` is Swagger UI for our OpenAPI schema, served whole by
the app from the swagger-ui-bundle package: it works offline and loads nothing from
elsewhere, so its page runs under a Content-Security-Policy of 'self' only."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from swagger_ui_bundle import swagger_ui_path

router = APIRouter(include_in_schema=False)
docs_router = APIRouter(prefix="/docs", include_in_schema=False)

# The files of the bundle the page loads; nothing else of the package is served.
_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
# What swagger-ui-bundle's own index.html starts it with, as a file of ours rather than an
# inline script, which the policy below would refuse. The page says where the schema is.
_INIT_SCRIPT = """\
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis],
    // Its default badge loads an image from validator.swagger.io.
    validatorUrl: null,
  });
});
"""
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title} API reference</title>
<link rel="stylesheet" href="{base}/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="{base}/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{base}/openapi.json"></div>
<script src="{base}/docs/assets/swagger-ui-bundle.js"></script>
<script src="{base}/docs/init.js"></script>
</body>
</html>
"""
# The bundle changes only with the package's version, which is in no URL: a day, not forever.
_ASSET_CACHE = "public, max-age=86400"


@router.get("/")
async def home(request: Request) -> RedirectResponse:
    return RedirectResponse(_base(request) + "/dashboard", status_code=302)


@docs_router.get("")
async def docs_page(request: Request) -> HTMLResponse:
    page = _PAGE.format(title=request.app.title, base=_base(request))
    return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CSP})


@docs_router.get("/init.js")
async def docs_init_script() -> Response:
    return Response(
        _INIT_SCRIPT, media_type="text/javascript", headers={"Cache-Control": _ASSET_CACHE}
    )


@docs_router.get("/assets/{name}")
async def docs_asset(name: str) -> FileResponse:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, "no such asset")
    return FileResponse(
        Path(str(swagger_ui_path)) / name,
        media_type=media_type,
        headers={"Cache-Control": _ASSET_CACHE},
    )


def _base(request: Request) -> str:
    # Behind a proxy that mounts us under a path (uvicorn --root-path), links keep it.
    return str(request.scope.get("root_path", "")).rstrip("/")
