"""The site the tests run under uvicorn (configured through $KOEKJE_CONFIG), with a switch for outages:
``POST /_test/store/down`` closes the store of the worker that answers, ``POST /_test/store/up`` opens it
again (a real store, really closed: what a dead ClickHouse or a lost disk looks like to that worker)."""

import os

import anyio
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from support import site

from koekje.middleware import KoekjeMiddleware, load_config


def app() -> ASGIApp:
    koekje = KoekjeMiddleware(site(), load_config(os.environ["KOEKJE_CONFIG"]))

    async def with_outages(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in ("/_test/store/down", "/_test/store/up"):
            store = koekje.runtime.store
            await anyio.to_thread.run_sync(store.close if scope["path"].endswith("down") else store.open)
            await PlainTextResponse("done")(scope, receive, send)
            return
        await koekje(scope, receive, send)

    return with_outages
