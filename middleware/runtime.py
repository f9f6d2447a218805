"""Everything one KoekjeMiddleware runs on, built once from the configuration, started and stopped with the
application (ASGI lifespan, or on the first request when the server does not send lifespan).

Files (GeoIP database, banner assets and texts) are read at construction, so a broken configuration fails
at once and the request path never reads a file. Storage never stops the site: when it cannot be reached
the pages are served, the loss is counted and logged, and the store is tried again later."""

from __future__ import annotations

import asyncio
import html
import logging
from collections import Counter
from datetime import timedelta
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.requests import cookie_parser
from starlette.types import Scope

from koekje.analytics import Accounts, Clock, PageView, PageViewSink, Recorder, Store, StoreError, migrate
from koekje.analytics.web import is_secure
from koekje.banner import ASSET_NAMES, asset, texts

from .capture import Capture
from .config import Config
from .consent import ConsentCookies
from .cookies import delete_cookie, set_cookie
from .endpoints import build_router
from .geo import GeoLookup
from .ip import ClientAddress, Truncator
from .topics import TopicRules
from .visitor import Visitor, new_visitor_cookie, visitor_id

log = logging.getLogger("koekje")


class Runtime:
    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config.validate()
        self.clock = clock
        prepare = (lambda store: migrate(store, clock)) if config.analytics.auto_migrate else None
        self.store = Store(config.store_settings(), prepare=prepare)
        self.recorder: Recorder[PageView] = Recorder(PageViewSink(self.store), config.recorder_settings())
        self.accounts = Accounts(self.store, clock)
        self.geo = GeoLookup(config.geo_database())
        self.geo.open()
        for name in ASSET_NAMES:
            asset(name)
        for language in config.banner.languages:
            texts(language)
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
            truncate=self.truncate,
            clock=clock,
        )
        self.inject_banner = config.banner.inject
        self.failures: Counter[str] = Counter()
        self._tags: dict[str, bytes] = {}
        self.router = build_router(self)
        self._started = False
        self._stopped = False
        self._starting = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def ensure_started(self) -> None:
        if self._started or self._stopped:
            return
        async with self._starting:
            if not (self._started or self._stopped):
                await run_in_threadpool(self._start)
                self._started = True

    async def stop(self) -> None:
        """Drain the write queue and close the store. Final: later requests are served without capture."""
        self._stopped = True
        if self._started:
            await run_in_threadpool(self._stop)

    def _start(self) -> None:
        self.recorder.start()
        try:
            self.store.open()
        except StoreError as exc:
            log.error("koekje cannot use its store; pages are served, page views are not kept: %s", exc)
        else:
            log.info("koekje started: %s, database %s", _kind(self.store), self.store.settings.database)

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
        return Visitor(consent, visitor_id(vid), self.address(scope), self.geo, gpc), vid

    def prefix(self, root_path: str) -> str:
        return f"{root_path}{self.config.site.prefix}"

    def banner_tag(self, root_path: str) -> bytes:
        tag = self._tags.get(root_path)
        if tag is None:
            prefix = html.escape(self.prefix(root_path))
            css, js = asset("banner.css"), asset("banner.js")
            tag = (
                f'<link rel="stylesheet" href="{prefix}/banner.css?v={css.version}">'
                f'<script src="{prefix}/banner.js?v={js.version}" defer></script>'
            ).encode()
            if len(self._tags) < 64:  # root paths come from the server's mounts: a handful at most
                self._tags[root_path] = tag
        return tag

    def secure(self, scope: Scope) -> bool:
        return is_secure(scope.get("scheme", "http"), self.config.site.secure_cookies)

    def issue_visitor_id(self, scope: Scope) -> tuple[UUID, tuple[bytes, bytes]]:
        """A new random visitor id (only ever with analytics consent): its stored form and its cookie."""
        value = new_visitor_cookie()
        name = self.config.consent.visitor_cookie
        header = set_cookie(name, value, max_age=self.consent_max_age, secure=self.secure(scope))
        stored = visitor_id(value)
        assert stored is not None
        return stored, header

    def remove_visitor_id(self, scope: Scope) -> tuple[bytes, bytes]:
        return delete_cookie(self.config.consent.visitor_cookie, secure=self.secure(scope))


def _kind(store: Store) -> str:
    return "embedded chDB" if store.settings.embedded else "ClickHouse server"
