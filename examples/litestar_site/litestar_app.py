"""koekje around a Litestar app. Litestar's own middleware runs after its router has matched a route, so
koekje's endpoints (``/_koekje/...``), which are no route of the app, would never be reached from there:
wrap the whole application instead, as any ASGI app. A handler labels its page's topics in the scope's
state (Litestar's ``request.state`` is a copy of it, so a label set there would not reach koekje).

    cd examples/litestar_site
    export KOEKJE_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    uvicorn litestar_app:create_app --factory --log-config ../uvicorn-logging.json
"""

from pathlib import Path
from typing import Any, cast

from litestar import Litestar, Request, get
from litestar.response import Response
from starlette.types import ASGIApp

from koekje.middleware import Config, KoekjeMiddleware

HERE = Path(__file__).parent


def _page(title: str, body: str) -> Response[str]:
    html = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h1>{title}</h1>{body}"
        "<a href='/_koekje/settings?lang=en&amp;return=/' data-koekje-open>Cookie settings</a></body></html>"
    )
    return Response(html, media_type="text/html")


@get("/")
async def home(request: Request[Any, Any, Any]) -> Response[str]:
    visitor = request.scope["koekje"]  # type: ignore[typeddict-item]
    return _page("Home", f"<p>Statistics {'allowed' if visitor.allows('analytics') else 'not allowed'}.</p>")


@get("/implants")
async def implants(request: Request[Any, Any, Any]) -> Response[str]:
    request.scope.setdefault("state", {})["koekje_topics"] = ["implants"]
    return _page("Implants", "<p>What an implant is.</p>")


@get("/api/ping")
async def ping() -> dict[str, str]:
    return {"pong": "yes"}


def create_app(config: Config | str | Path = HERE / "koekje.toml") -> ASGIApp:
    app = Litestar(route_handlers=[home, implants, ping])
    # The same ASGI interface; Litestar spells its messages as TypedDicts, Starlette's types as mappings.
    return KoekjeMiddleware(cast(ASGIApp, app), config=config)
