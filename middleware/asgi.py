"""KoekjeMiddleware: the one piece a site adds. Pure ASGI."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koekje.analytics import Clock, utcnow

from .config import Config, load_config
from .page import PageResponse
from .runtime import Runtime


class KoekjeMiddleware:
    """Consent-first analytics around an ASGI app.

    ``KoekjeMiddleware(app, config="koekje.toml")``, or a :class:`Config`; with Starlette also
    ``Middleware(KoekjeMiddleware, config=...)``. Endpoints see the visitor in ``request.scope["koekje"]``
    and may label a page with ``request.state.koekje_topics = ["topic"]``.
    """

    def __init__(
        self, app: ASGIApp, config: Config | str | os.PathLike[str] = "koekje.toml", *, clock: Clock = utcnow
    ) -> None:
        self.app = app
        self.config = config if isinstance(config, Config) else load_config(Path(config))
        self.runtime = Runtime(self.config, clock)
        self._prefix = self.config.site.prefix + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime = self.runtime
        await runtime.ensure_started()
        visitor, vid = runtime.visitor(scope)
        scope["koekje"] = visitor
        path = _route_path(scope)
        if path.startswith(self._prefix):
            await runtime.router(scope, receive, send)
            return
        await self.app(scope, receive, PageResponse(runtime, scope, path, visitor, vid, send).send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start with the app and drain the write queue when it stops."""
        runtime = self.runtime

        async def receive_and_start() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await runtime.ensure_started()
            return message

        async def stop_and_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await runtime.stop()
            await send(message)

        await self.app(scope, receive_and_start, stop_and_send)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
