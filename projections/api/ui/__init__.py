"""The session explorer: static files served by the query API at /ui (docs/ui.md).

Invariants: the assets are files of this package (shipped in the wheel as package data), read
once when the app is built and served from a fixed list: no path from the request reaches the
file system. Every /ui answer carries a strict Content-Security-Policy (scripts and styles from
this origin only, no inline code, no eval; connections to this origin and to the command API of
`ui_command_api_url`, which "fork here" posts to), nosniff, no referrer and no framing. The page
itself needs no key to load; the API key the user types stays in the tab (sessionStorage) and
is sent in the Authorization header of each API call, never in a URL. `/ui/me` tells the page
the tenant and role of its key (an authenticated read like any other).
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse, RedirectResponse, Response

from agentlog.edge.keys import Principal
from projections.api.deps import principal
from projections.settings import QueriesSettings

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "sessions.js": "text/javascript; charset=utf-8",
    "session.js": "text/javascript; charset=utf-8",
    "timeline.js": "text/javascript; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy(command_api_url: str) -> str:
    connect = " ".join(filter(None, ["'self'", origin_of(command_api_url)]))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def security_headers(command_api_url: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(command_api_url),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }


def router(settings: QueriesSettings) -> APIRouter:
    """The /ui routes of one app (left out of the OpenAPI document: they are a page, not the API)."""
    files = {name: resources.files(__name__).joinpath(name).read_bytes() for name in ASSETS}
    headers = security_headers(settings.ui_command_api_url)
    config = {"command_api_url": origin_of(settings.ui_command_api_url) or None}
    ui = APIRouter(prefix="/ui", include_in_schema=False)

    @ui.get("")
    async def ui_root() -> Response:
        return RedirectResponse("/ui/", status_code=308, headers=headers)

    @ui.get("/")
    async def ui_index() -> Response:
        return Response(files["index.html"], media_type=ASSETS["index.html"], headers=headers)

    @ui.get("/config.json")
    async def ui_config() -> Response:
        return JSONResponse(config, headers=headers)

    @ui.get("/me")
    async def ui_me(who: Annotated[Principal, Depends(principal)]) -> Response:
        return JSONResponse({"tenant": who.tenant, "role": who.role}, headers={**headers, "Cache-Control": "no-store"})

    @ui.get("/{name}")
    async def ui_asset(name: str) -> Response:
        if name not in files or name == "index.html":
            raise HTTPException(404, "no such file of the explorer")
        return Response(files[name], media_type=ASSETS[name], headers=headers)

    return ui
