"""KoekjeMiddleware: the one piece a site adds. Pure ASGI."""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path

from starlette.requests import ClientDisconnect
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koekje.analytics import Clock, Dashboard, utcnow
from koekje.analytics.cookies_seen import undeclared_cookies
from koekje.analytics.web import SECURITY_HEADERS, BodyTimeout

from .config import Config, load_config
from .endpoints import ConsentEndpoints, MetricsEndpoint, build_router
from .metrics import KoekjeCollector
from .page import PageResponse, header_pairs
from .rights import RightsEndpoints
from .runtime import RETRY_START_SECONDS, Runtime, StartFailed

log = logging.getLogger("koekje")


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
        # Why koekje cannot run at all (a mistake in its configuration), or None. Not raised from here:
        # Starlette's add_middleware builds the middleware when the lifespan's first message comes, and
        # uvicorn takes an exception there for an app without lifespan, starts anyway and answers every
        # request 500 with a traceback (found by a helper). The start fails with it instead.
        self.unusable: str | None = None
        try:
            self._build(config, clock)
        except (ValueError, OSError) as exc:  # a ConfigError (a ValueError), or a GeoIP database that is not
            # one (found by a review), say: each names what to change
            self.unusable = f"koekje cannot start: {exc}"
            log.error("%s", self.unusable)

    def _build(self, config: Config | str | os.PathLike[str], clock: Clock) -> None:
        self.config = config if isinstance(config, Config) else load_config(Path(config))
        self.runtime = runtime = Runtime(self.config, clock)
        self._prefix = self.config.site.prefix + "/"
        # Asset paths, each with its trailing slash: one startswith for all, at a segment boundary.
        self._assets = tuple(path.rstrip("/") + "/" for path in self.config.site.asset_paths)
        self._regional = runtime.geo.configured
        consent = _consent_endpoints(runtime)
        self._router = build_router(
            self.config.site.prefix,
            consent,
            _dashboard(runtime),
            _metrics(runtime),
            runtime.collect,
            RightsEndpoints(
                runtime.subjects,
                runtime.engine,
                runtime.guard,
                runtime.flush,
                runtime.content,
                runtime.declarations,
                consent.decide,
                languages=self.config.banner.languages,
                categories=self.config.consent.categories,
                prefix=self.config.site.prefix,
                undeclared=partial(undeclared_cookies, runtime.store, self.config.site.id),
            ),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.unusable is not None:
            await self._refuse(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime = self.runtime
        if not runtime.started:
            try:
                await runtime.ensure_started()
            except StartFailed:
                await _unavailable(scope, receive, send, retry=True)  # (why is in the log)
                return
        path = _route_path(scope)
        if self._assets and path.startswith(self._assets) and "/." not in path and "//" not in path:
            # Files that are never pages and set no cookies (the site's word, site.asset_paths): untouched.
            # (Even a wrapper around send would cost such a request a tenth of its time over HTTP.) A path
            # with dot segments or empty ones could lead an app that resolves them elsewhere: handled.
            await self.app(scope, receive, send)
            return
        engine = runtime.engine
        visitor, incoming = engine.read(scope)
        if path.startswith(self._prefix):
            scope["koekje"] = visitor
            try:
                await self._router(scope, receive, send)
            except ClientDisconnect:
                # The visitor went away while sending a choice, a beacon or a form: nothing to answer and
                # nothing recorded; counted, not logged (a traceback per hang-up is noise, or a flood).
                runtime.disconnects += 1
            except BodyTimeout as exc:
                # A body that trickles in, or never comes: answered and the connection closed, counted.
                runtime.slow_bodies += 1
                headers = {**SECURITY_HEADERS, "Connection": "close"}
                await PlainTextResponse(str(exc), 408, headers=headers)(scope, receive, send)
            return
        # Only a browser signal or a region's rules can imply a decision: without either, skip the question.
        implied = engine.implied(visitor) if visitor.gpc or self._regional else None
        scope["koekje"] = visitor if implied is None else visitor.with_consent(implied)
        page = PageResponse(runtime.pages, scope, path, visitor, incoming, implied, send)
        await self.app(scope, receive, page.send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Without a usable configuration: the start fails with the reason (the server stops and says it),
        and where there is no lifespan nothing is served unenforced: 503 (the reason was logged once)."""
        kind = scope["type"]
        if kind == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": self.unusable})
            else:
                await send({"type": "lifespan.shutdown.complete"})
        elif kind == "http" or kind == "websocket":
            await _unavailable(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket handshake can set cookies too: its accept goes through the same enforcement, and the
        app sees the visitor in ``scope["koekje"]`` (no implicit decision is made here: no page, no proof)."""
        runtime = self.runtime
        try:
            await runtime.ensure_started()
        except StartFailed:
            await _unavailable(scope, receive, send)
            return
        visitor, _ = runtime.engine.read(scope)
        scope["koekje"] = visitor
        guard, path = runtime.guard, _route_path(scope)

        async def send_enforced(message: Message) -> None:
            # The accept, or a refusal answered as HTTP (found by trying: its cookies went out unfiltered).
            kind = message["type"]
            opens = kind == "websocket.accept" or kind == "websocket.http.response.start"
            if opens and guard.enabled and message.get("headers"):
                message["headers"] = headers = header_pairs(message)
                guard.filter(headers, visitor.consent, path)
            await send(message)

        await self.app(scope, receive, send_enforced)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start with the app and drain the write queues when it stops."""
        runtime = self.runtime

        async def receive_and_start() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await runtime.ensure_started()
                except StartFailed as exc:
                    # Said to the server, which stops with the reason (raised before the app's startup).
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    raise
            return message

        async def stop_and_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await runtime.stop()
            await send(message)

        await self.app(scope, receive_and_start, stop_and_send)


async def _unavailable(scope: Scope, receive: Receive, send: Send, *, retry: bool = False) -> None:
    """Nothing served without the visitor's choice enforced: a request is answered 503 (with Retry-After
    when a start is tried again later), a WebSocket closed."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1011})
        return
    headers = {"Retry-After": str(int(RETRY_START_SECONDS))} if retry else None
    await PlainTextResponse("Service unavailable", 503, headers=headers)(scope, receive, send)


def _consent_endpoints(runtime: Runtime) -> ConsentEndpoints:
    config = runtime.config
    return ConsentEndpoints(
        runtime.engine,
        runtime.content,
        runtime.guard,
        runtime.declarations,
        languages=config.banner.languages,
        categories=config.consent.categories,
        prefix=config.site.prefix,
        consent_mode=runtime.pages.consent_mode,
        floating_button=config.banner.floating_button,
    )


def _dashboard(runtime: Runtime) -> Dashboard | None:
    config = runtime.config
    if not config.dashboard.enabled:
        return None
    return Dashboard(
        runtime.store,
        runtime.accounts,
        list(config.secret_keys),
        config.dashboard_settings(),
        runtime.clock,
        scheme=runtime.proxies.scheme,
        client_prefix=lambda scope: scope["koekje"].prefix,
        client_address=lambda scope: scope["koekje"].address,
    )


def _metrics(runtime: Runtime) -> MetricsEndpoint | None:
    config = runtime.config
    if not config.metrics.enabled:
        return None
    collector = KoekjeCollector(runtime.snapshots.total, runtime.spool.size)
    return MetricsEndpoint(collector, config.metrics.allow, config.metrics_token)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
