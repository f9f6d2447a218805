"""A site run by several uvicorn worker processes on koekje's embedded store: nothing to configure. One
worker owns the store and the others ask it; every page view arrives once, whichever worker served it.

    cd examples/multi_worker
    export KOEKJE_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    uvicorn workers_app:app --workers 4 --log-config ../uvicorn-logging.json

Send SIGHUP to uvicorn's parent process to replace the workers one by one (a new GeoIP database, new keys).
"""

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from koekje.middleware import KoekjeMiddleware

HERE = Path(__file__).parent


async def page(request: Request) -> HTMLResponse:
    path = request.url.path
    return HTMLResponse(
        f"<!doctype html><html lang='en'><head><title>{path}</title></head>"
        f"<body><p>{path}, served by worker {os.getpid()}</p></body></html>"
    )


app = Starlette(routes=[Route("/", page), Route("/{topic}/{page}", page)])
# Each worker loads the configuration when it starts (lazily, on its first event), not on import.
app.add_middleware(KoekjeMiddleware, config=HERE / "koekje.toml")
