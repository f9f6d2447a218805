"""Everything one KoekjeMiddleware runs on: the long-lived services, built once from the configuration,
started and stopped with the application (ASGI lifespan, or on the first request when the server does not
send lifespan). Composition only: what happens per request lives in the modules that do it.

Files (GeoIP database, banner assets and texts) are read at construction, so a broken configuration fails
at once and the request path never reads a file. Storage never stops the site: when it cannot be reached
the pages are served, the loss is counted and logged, and the store is tried again later."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import timedelta
from functools import partial
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from starlette.concurrency import run_in_threadpool

from koekje.analytics import Accounts, Clock, PageViewRows, Recorder, Store, StoreError, migrate
from koekje.analytics.cookies_seen import CookieSighting, tally
from koekje.analytics.events import Engagement, EngagementRows, SpoolSink
from koekje.analytics.ledger import Method
from koekje.analytics.ledger_writer import LedgerWriter
from koekje.analytics.loader import Loader
from koekje.analytics.publish import Publisher
from koekje.analytics.remote import Ownership
from koekje.analytics.spool import Spool
from koekje.analytics.subjects import Subjects
from koekje.banner import ASSET_NAMES, asset

from .capture import Capture, PageViews, clean_path
from .collect import CollectEndpoint
from .config import Config
from .consent import ConsentCookies, Revocations
from .consent_mode import ConsentModeDefault
from .enforce import CookieGuard
from .engine import ConsentEngine
from .geo import GeoLookup
from .ip import Proxies, Truncator
from .logs import warn_if_access_log_unfiltered
from .markup import PageBanner
from .metrics import Snapshots
from .notice import banner_content
from .page import Pages
from .profiles import Profiles
from .records import Hit
from .tags import BannerTags
from .topics import TopicRules
from .visitor import Locator
from .visits import Visits

log = logging.getLogger("koekje")
_METHODS = frozenset(str(method) for method in Method)


RETRY_START_SECONDS = 10.0  # how long a failed start stands before a request tries again


class StartFailed(RuntimeError):
    """koekje could not start (its spool cannot be used): pages are answered 503, never served without the
    visitor's choice enforced."""


class Runtime:
    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config.validate()
        self.clock = clock
        site, consent = config.site, config.consent
        prepare = (lambda store: migrate(store, clock)) if config.analytics.auto_migrate else None
        self.spool = Spool(config.spool_path(), max_bytes=config.analytics.spool_max_mb << 20)
        # Several workers (uvicorn --workers, gunicorn) share the spool; one owns the embedded store and
        # loads the spool, the others ask it (koekje.analytics.remote).
        self.ownership = Ownership(self.spool.root)
        self.store = Store(config.store_settings(), prepare=prepare, ownership=self.ownership)
        self.snapshots = Snapshots(self.spool.root / "metrics", self.counters)
        self.subjects = Subjects(
            self.store, self.spool.root, keep_seconds=config.consent.max_age_days * 86400.0
        )
        self.loader = Loader(
            self.store,
            self.spool,
            site.id,
            clock,
            load_interval=config.analytics.load_interval_seconds,
            ownership=self.ownership,
            on_tick=self.snapshots.write if config.metrics.enabled else None,
            erasures=self.subjects,
            # The dashboard's cells of finished days, worked out once by the process that loads.
            publisher=Publisher(self.store, ZoneInfo(site.timezone), config.dashboard.min_visitors, clock)
            if config.dashboard.enabled
            else None,
        )
        wake = self.loader.wake
        topics = TopicRules(config.analytics.topics)
        self.page_view_rows = PageViewRows()  # crawlers out, devices in
        # The write buffer's step: admitted pages become rows on its thread, not on the request path.
        self.page_views = PageViews(site.id, topics, self.page_view_rows)
        self.recorder: Recorder[Hit] = Recorder(
            SpoolSink(self.spool, "page_views", wake, rows=self.page_views), config.recorder_settings()
        )
        self.engagement_rows = EngagementRows()  # crawlers out
        self.engagement: Recorder[Engagement] = Recorder(
            SpoolSink(self.spool, "engagement", wake, rows=self.engagement_rows), config.recorder_settings()
        )
        self.sightings: Recorder[CookieSighting] = Recorder(
            SpoolSink(self.spool, "cookies_seen", wake, rows=tally), config.recorder_settings()
        )
        self.accounts = Accounts(self.store, clock)
        self.geo = GeoLookup(config.geo_database())
        self.geo.open()
        for name in ASSET_NAMES:
            asset(name)

        self.declarations = declarations = config.declarations()
        lifetime = timedelta(days=consent.max_age_days)
        self.revocations = Revocations(lifetime, clock)
        self.ledger = LedgerWriter(
            self.store,
            self.spool,
            clock,
            lookback=lifetime,
            on_superseded=self.revocations.add,
            on_spooled=wake,
        )
        self.content = banner_content(config)
        for language in config.banner.languages:
            self.ledger.register_texts(
                self.content.hash(language), language, self.content.canonical(language)
            )

        self.proxies = Proxies(site.trusted_proxies, site.proxy_header)
        locator = Locator(
            self.proxies,
            Truncator(config.geo.ipv4_prefix, config.geo.ipv6_prefix),
            self.geo,
            consent.region_rules(),
        )
        codec = ConsentCookies(
            config.secret_keys,
            categories=consent.categories,
            services=declarations.services,
            revision=consent.policy_revision,
            max_age=lifetime,
            clock=clock,
        )
        self.engine = ConsentEngine(
            consent,
            declarations,
            codec,
            self.revocations,
            locator,
            self.ledger,
            self.content.hash,
            clock,
            secure_cookies=site.secure_cookies,
            profiles=Profiles(erased=partial(attrgetter("erased"), self.subjects)),
        )
        self.guard = CookieGuard(
            declarations,
            consent.enforce,
            own=self.engine.own_cookie_names(),
            domains=consent.cookie_domains,
            paths=consent.cookie_paths,
            report=self._report_cookie,
        )
        self.capture = Capture(
            recorder=self.recorder,
            topics=topics,
            clock=clock,
            exclude_paths=config.analytics.exclude_paths,
            # The notes as they are now (C all the way: every recorded page asks, and a lambda is a frame).
            erased=partial(attrgetter("erased"), self.subjects),
        )
        visits = Visits(consent.visit_cookie, timedelta(minutes=config.analytics.visit_timeout_minutes))
        self.collect = CollectEndpoint(
            self.engine,
            self.capture,
            visits,
            self.engagement,
            site=site.id,
            prefix=site.prefix,
            clock=clock,
        )
        mode = consent.google_consent_mode
        self.pages = Pages(
            self.engine,
            self.guard,
            self.capture,
            visits,
            BannerTags(site.prefix) if config.banner.inject else None,
            ConsentModeDefault(consent.consent_mode_types(), mode.wait_for_update, declarations)
            if mode.enabled
            else None,
            PageBanner(self.content, config.banner.languages, site.prefix, config.banner.floating_button)
            if config.banner.inject
            else None,
        )
        self.started = False  # read on every request: the check costs less than a call
        self.disconnects = 0  # requests to koekje's endpoints whose client hung up mid-body
        self.slow_bodies = 0  # requests to koekje's endpoints whose body did not arrive in time (408)
        self._stopped = False
        self._starting = anyio.Lock()  # anyio, not asyncio: Starlette sites may run on trio
        self._failed_at: float | None = None  # when the last start failed (tried again after a while)
        self.start_error = ""  # why (logged once per attempt, and told to the server)

    def counters(self) -> dict[str, Any]:
        """This process's counts, for the metrics (read at scrape time, and snapshotted for other workers)."""
        dropped: Counter[str] = Counter()
        for counts in (
            self.capture.counts(),
            self.recorder.dropped,
            self.page_view_rows.dropped,
            self.page_views.dropped,
            self.sightings.dropped,
            self.engagement.dropped,
            self.engagement_rows.dropped,
            self.collect.dropped,
            self.ledger.dropped,
        ):
            dropped.update({str(reason): n for reason, n in counts.items()})
        dropped["decision_flood"] += self.engine.counts["decision_flood"]
        removed: Counter[str] = Counter()
        for (_, reason), n in self.guard.removed.items():
            removed[str(reason)] += n
        decisions = {
            key.removeprefix("decision_"): n
            for key, n in self.engine.counts.items()
            if key.startswith("decision_") and key.removeprefix("decision_") in _METHODS
        }
        return {
            "recorded": self.recorder.submitted,
            "spooled": self.recorder.written,
            "loaded": dict(self.loader.loaded),
            "dropped": dict(dropped),
            "decisions": decisions,
            "cookies_removed": dict(removed),
            "clipped": dict(self.page_views.clipped),
            "pages_without_banner": dict(self.pages.counts),
            "disconnects": self.disconnects,
            "slow_bodies": self.slow_bodies,
            "queue_depth": self.recorder.depth
            + self.engagement.depth
            + self.sightings.depth
            + self.ledger.depth,
            "owner": int(self.ownership.held),
            "load_buckets": list(self.loader.latency.counts),
            "load_seconds": self.loader.latency.total,
        }

    def _report_cookie(self, name: str, path: str) -> None:
        """The site set a cookie nobody declared (report mode): tally it."""
        self.sightings.submit(CookieSighting(self.clock(), self.config.site.id, name, clean_path(path)))

    async def ensure_started(self) -> None:
        """Start, once; StartFailed when the spool cannot be used (said in the log once per attempt, and
        tried again after ``RETRY_START_SECONDS``). Found by trying: a spool directory the site's user
        cannot create made every request a 500 with a traceback, and uvicorn's default lifespan mode took
        the failed start for an app without lifespan support."""
        if self.started or self._stopped:
            return
        async with self._starting:
            if not (self.started or self._stopped):
                await self._start_once()

    async def _start_once(self) -> None:
        failed = self._failed_at
        if failed is not None and time.monotonic() - failed < RETRY_START_SECONDS:
            raise StartFailed(self.start_error)
        try:
            # Only the spool is tried before anything starts: a start that fails leaves no thread running
            # (and one tried again starts none twice).
            await run_in_threadpool(self.spool.open)
        except (OSError, ValueError) as exc:  # ValueError: a link, another user's (found by a review)
            self._failed_at = time.monotonic()
            said = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.start_error = (
                f"koekje cannot start: its spool {self.spool.root} cannot be used ({said}). Set "
                "analytics.spool_dir to a directory of the site's own that its user can create and write."
            )
            log.error("%s", self.start_error)
            raise StartFailed(self.start_error) from None
        await run_in_threadpool(self._start)
        self.started = True

    async def stop(self) -> None:
        """Drain the write queues and close the store. Final: later requests are served without capture."""
        self._stopped = True
        if self.started:
            await run_in_threadpool(self._stop)

    def _start(self) -> None:
        """What runs once the spool is open (a start that fails before this is tried again)."""
        warn_if_access_log_unfiltered()  # the server's log, not koekje's: said where the owner will see it
        self.recorder.start()
        self.sightings.start()
        self.engagement.start()
        self.ledger.start()
        try:
            self.store.open()
        except StoreError as exc:
            log.error(
                "koekje cannot use its store now; what it records waits in %s: %s", self.spool.root, exc
            )
        else:
            log.info("koekje started: %s, database %s", _kind(self.store), self.store.settings.database)
        self.loader.start()

    def _stop(self) -> None:
        """Everything queued goes to the spool, then the loader takes what the store can take now, and
        another worker can take over the store."""
        self.ledger.stop()
        self.recorder.stop()
        self.sightings.stop()
        self.engagement.stop()
        self.loader.stop()
        if self.config.metrics.enabled:
            self.snapshots.write(force=True)
        self.store.close()
        self.ownership.release()
        self.geo.close()

    def flush(self, timeout: float = 30.0) -> bool:
        """Everything recorded so far in the store (or, when it is down, in the spool); False when something
        is still only in the spool after ``timeout``. Blocking."""
        spooled = (
            self.recorder.flush(timeout)
            and self.engagement.flush(timeout)
            and self.sightings.flush(timeout)
            and self.ledger.flush(timeout)
        )
        if self.ownership.try_acquire():
            return self.loader.flush() and spooled
        return self.spool.wait_loaded(timeout) and spooled  # the owner loads it


def _kind(store: Store) -> str:
    return "embedded chDB" if store.settings.embedded else "ClickHouse server"
