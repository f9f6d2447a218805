"""Everything one KoekjeMiddleware runs on, built once from the configuration, started and stopped with the
application (ASGI lifespan, or lazily on the first request when the server does not send lifespan)."""

from __future__ import annotations

import asyncio
import html
import logging
from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import cookie_parser
from starlette.types import Scope

from koekje.analytics import Accounts, Clock, PageView, PageViewSink, Recorder, Store, migrate
from koekje.analytics.web import is_secure
from koekje.banner import asset

from .capture import Capture
from .config import Config
from .consent import ConsentCookies
from .endpoints import build_router
from .geo import GeoLookup
from .ip import ClientAddress, Truncator
from .topics import TopicRules
from .visitor import Visitor, visitor_id

log = logging.getLogger("koekje")


class Runtime:
    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config.validate()
        self.clock = clock
        self.store = Store(config.store_settings())
        self.recorder: Recorder[PageView] = Recorder(PageViewSink(self.store), config.recorder_settings())
        self.accounts = Accounts(self.store, clock)
        self.geo = GeoLookup(config.geo_database())
        self.truncate = Truncator(config.geo.ipv4_prefix, config.geo.ipv6_prefix)
        self.address = ClientAddress(config.site.trusted_proxies)
        self.consent_max_age = config.consent.max_age_days * 86400
        self.cookies = ConsentCookies(
            config.secret_keys,
            categories=config.consent.categories,
            revision=config.consent.policy_revision,
            max_age=timedelta(days=config.consent.max_age_days),
            clock=clock,
        )
        self.capture = Capture(
            site=config.site.id,
            recorder=self.recorder,
            topics=TopicRules(config.analytics.topics),
            address=self.address,
            truncate=self.truncate,
            geo=self.geo,
            clock=clock,
        )
        self.inject_banner = config.banner.inject
        self.router = build_router(self)
        self._started = False
        self._starting = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def ensure_started(self) -> None:
        if self._started:
            return
        async with self._starting:
            if not self._started:
                await run_in_threadpool(self._start)
                self._started = True

    async def stop(self) -> None:
        if self._started:
            await run_in_threadpool(self._stop)
            self._started = False

    def _start(self) -> None:
        self.geo.open()
        self.store.open()
        if self.config.analytics.auto_migrate:
            migrate(self.store, self.clock)
        self.recorder.start()
        log.info("koekje started: store %s, database %s", _kind(self.store), self.store.settings.database)

    def _stop(self) -> None:
        self.recorder.stop()
        self.store.close()
        self.geo.close()

    # -- per request --------------------------------------------------------------------------------------

    def visitor(self, scope: Scope) -> tuple[Visitor, str | None]:
        """The visitor of this request, and the raw visitor-id cookie (to remove it when not allowed)."""
        cookie_headers = []
        gpc = False
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie_headers.append(value.decode("latin-1"))
            elif name == b"sec-gpc":
                gpc = value.strip() == b"1"
        cookies = cookie_parser("; ".join(cookie_headers)) if cookie_headers else {}
        consent = self.cookies.loads(cookies.get(self.config.consent.cookie))
        vid = cookies.get(self.config.consent.visitor_cookie)
        allowed = consent is not None and consent.allows("analytics")
        visitor = Visitor(consent, visitor_id(vid) if allowed else None, self.address(scope), self.geo, gpc)
        return visitor, vid

    def prefix(self, scope: Scope) -> str:
        return f"{scope.get('root_path', '')}{self.config.site.prefix}"

    def banner_tag(self, scope: Scope) -> bytes:
        prefix = html.escape(self.prefix(scope))
        css, js = asset("banner.css"), asset("banner.js")
        return (
            f'<link rel="stylesheet" href="{prefix}/banner.css?v={css.version}">'
            f'<script src="{prefix}/banner.js?v={js.version}" defer></script>'
        ).encode()

    def secure(self, scope: Scope) -> bool:
        return is_secure(scope.get("scheme", "http"), self.config.site.secure_cookies)


def _kind(store: Store) -> str:
    return "embedded chDB" if store.settings.embedded else "ClickHouse server"
