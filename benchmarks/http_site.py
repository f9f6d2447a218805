"""The site `benchmarks/http.py` serves under uvicorn: one small Starlette app, bare or behind a middleware.

    KOEKJE_BENCH_KIND=bare|koekje|koekje-assets|koekje-nosink|session|basehttp KOEKJE_BENCH_DIR=/tmp/x \
        uvicorn --app-dir benchmarks --factory http_site:create

A demo-like page: a realistic head (meta, stylesheet, title) and about 5 KB of body, served from memory so
that the page itself costs as little as a page can (the harder case for a middleware's ratio); a stylesheet
and a JSON answer as the static and non-HTML responses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

SECRET = "benchmark-secret-" + "x" * 32
HEAD = (
    '<!doctype html><html lang="nl"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<title>Implantologie — Tandwerk Support</title><link rel="stylesheet" href="/static/site.css">'
    '<meta name="description" content="Ondersteuning voor tandartspraktijken."></head>'
)
BODY = (
    '<body><header><nav><a href="/">Home</a> <a href="/implantologie">Implantologie</a> '
    '<a href="/cursussen">Cursussen</a></nav></header><main><h1>Implantologie</h1>'
    + "<p>Wij ondersteunen praktijken bij implantologie: planning, materialen en nazorg.</p>" * 50
    + "</main><footer><a href='/privacy'>Privacy</a></footer></body></html>"
)
PAGE = HEAD + BODY
STYLESHEET = "body { font-family: sans-serif; margin: 0 auto; max-width: 40rem; }\n" * 20


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE)


async def stylesheet(request: Request) -> Response:
    return Response(STYLESHEET, media_type="text/css", headers={"cache-control": "public, max-age=3600"})


async def api(request: Request) -> Response:
    return JSONResponse({"ok": True, "items": [1, 2, 3]})


ROUTES = [
    Route("/implantologie", page),
    Route("/static/site.css", stylesheet),
    Route("/api/status", api),
]


class NullSink:
    """A write buffer's sink that writes nothing: no rows made, nothing spooled, nothing loaded."""

    def write(self, batch: object) -> None:
        pass


class NoOp(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        return await call_next(request)


def create() -> Any:
    kind = os.environ.get("KOEKJE_BENCH_KIND", "bare")
    if kind == "bare":
        return Starlette(routes=ROUTES)
    if kind == "session":
        return Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, secret_key=SECRET)])
    if kind == "basehttp":
        return Starlette(routes=ROUTES, middleware=[Middleware(NoOp)])
    if kind == "koekje":
        return koekje_site(Path(os.environ["KOEKJE_BENCH_DIR"]))
    if kind == "koekje-assets":  # the same, with the stylesheet's folder declared as site.asset_paths
        return koekje_site(Path(os.environ["KOEKJE_BENCH_DIR"]), asset_paths=("/static",))
    if kind == "koekje-nosink":  # for analysis: the same, its write buffer's thread writing nothing
        site = koekje_site(Path(os.environ["KOEKJE_BENCH_DIR"]))
        site.runtime.recorder._sink = NullSink()
        return site
    raise SystemExit(f"unknown KOEKJE_BENCH_KIND {kind!r}")


def koekje_site(directory: Path, asset_paths: tuple[str, ...] = ()) -> Any:
    from koekje.middleware import KoekjeMiddleware

    return KoekjeMiddleware(Starlette(routes=ROUTES), koekje_config(directory, asset_paths))


def koekje_config(directory: Path, asset_paths: tuple[str, ...] = ()) -> Any:
    from koekje.middleware import Config
    from koekje.middleware.config import AnalyticsSection, DashboardSection, SiteSection

    return Config(
        secret_keys=(SECRET,),
        site=SiteSection(asset_paths=asset_paths),
        analytics=AnalyticsSection(
            data_dir=str(directory / "data"),
            spool_dir=str(directory / "spool"),
            topics={"implantologie": ("/implantologie",)},
        ),
        dashboard=DashboardSection(enabled=False),
    )
