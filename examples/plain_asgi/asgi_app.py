"""koekje around a plain ASGI application, no framework: the app reads the visitor from the scope and labels
its page's topics in the scope's state, which is all ``request.state`` is in a framework.

    cd examples/plain_asgi
    export KOEKJE_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    uvicorn asgi_app:create_app --factory --log-config ../uvicorn-logging.json
"""

import html
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from koekje.middleware import Config, KoekjeMiddleware

HERE = Path(__file__).parent
PAGES = {"/": "Home", "/implants": "Implants", "/hygiene": "Oral hygiene"}


async def site(scope: Scope, receive: Receive, send: Send) -> None:
    """A small HTML page per path. koekje passes the lifespan on: this app has nothing to start or stop."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    title = PAGES.get(scope["path"])
    if title is None:
        await _send(send, 404, b"not found", b"text/plain")
        return
    if scope["path"] != "/":
        scope.setdefault("state", {})["koekje_topics"] = [scope["path"].strip("/")]
    visitor = scope["koekje"]
    statistics = "allowed" if visitor.allows("analytics") else "not allowed"
    body = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1><p>Statistics: {statistics}.</p>"
        "<a href='/_koekje/settings?lang=en&amp;return=/' data-koekje-open>Cookie settings</a></body></html>"
    )
    await _send(send, 200, body.encode(), b"text/html; charset=utf-8")


async def _send(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(config: Config | str | Path = HERE / "koekje.toml") -> ASGIApp:
    return KoekjeMiddleware(site, config=config)
