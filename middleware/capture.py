"""Turning a served page into a page-view event, or into a counted reason for not recording it.

On the request path (no I/O, no locks) the request is read once into a ``Hit``; an ordered tuple of named
steps runs, each returning a ``Drop`` reason or nothing (the first that objects names the drop); and an
admitted hit is queued as it is: what the request said, as it said it, with the visitor's truncated address
and id (never the full address: the hit does not hold the visitor). Everything that only shapes the stored
row (topics, referrer host, UTM campaign, the path cleaned and clipped, and telling crawlers and devices
apart by user agent) is the write buffer's step, ``PageViews``, on its own thread in batches: the request
pays for an append to a queue, not for the row.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Container, Sequence
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit
from uuid import UUID

from starlette.types import Scope

from koekje.analytics import Clock, PageView, Recorder
from koekje.analytics.batching import share_the_gil
from koekje.analytics.devices import MAX_USER_AGENT
from koekje.analytics.drops import Drop

from .records import Hit, Incoming
from .topics import TopicRules, app_topics
from .visitor import Visitor

MAX_PATH = 1024
MAX_CAMPAIGN = 100  # a UTM value longer than this is clipped
MAX_REFERER = 2048  # only this much of a Referer is looked at
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A DNS host name (lowercase, as urlsplit gives it): labels of letters, digits and inner hyphens, with a
# letter somewhere in the last label (so "203.0.113.7" is not a name). IPv6 literals have ":" and fail.
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)
_IPV4 = re.compile(r"[0-9.]+")
_UTM = ("utm_source", "utm_medium", "utm_campaign")
log = logging.getLogger("koekje")


def read_hit(scope: Scope, path: str, visitor: Visitor, incoming: Incoming) -> Hit:
    """A page as capture sees it (for a visitor who allows statistics: their address is truncated here)."""
    return Hit(
        path,
        scope.get("query_string", b""),
        incoming.referer,
        incoming.purpose,
        incoming.user_agent,
        incoming.host,
        visitor.id,
        visitor.prefix,
        visitor.country,
    )


Step = Callable[[Hit], Drop | None]


def prefetch(hit: Hit) -> Drop | None:
    # (find, not ``in``: CPython's ``in`` on bytes first tries the needle as an int, raising and clearing a
    # TypeError each time; and nearly every request says no purpose at all.)
    purpose = hit.purpose
    if purpose and (purpose.find(b"prefetch") >= 0 or purpose.find(b"prerender") >= 0):
        return Drop.PREFETCH
    return None


def visitor_id(hit: Hit) -> Drop | None:
    return None if hit.visitor_id is not None else Drop.NO_VISITOR_ID


def not_erased(erased: Callable[[], Container[UUID]]) -> Step:
    """A step that refuses the visitor ids of visitors who asked to be forgotten (a cookie from before the
    erasure, in another tab or another worker, still carries one)."""

    def erased_visitor(hit: Hit) -> Drop | None:
        return Drop.ERASED if hit.visitor_id is not None and forgotten(erased, hit.visitor_id) else None

    return erased_visitor


def forgotten(erased: Callable[[], Container[UUID]], visitor_id: UUID) -> bool:
    """Whether ``visitor_id`` is among those ``erased`` names (read each time: every worker's notes)."""
    ids = erased()
    return bool(ids) and visitor_id in ids


def address(hit: Hit) -> Drop | None:
    # Only the truncated prefix travels on; the full address stays in this request's memory.
    return None if hit.ip_prefix is not None else Drop.BAD_ADDRESS


def excluded(prefixes: Sequence[str]) -> Step:
    """A step that drops paths under ``prefixes`` (at a segment boundary), e.g. an admin area."""
    bounded = tuple(prefix.rstrip("/") for prefix in prefixes)

    def excluded_path(hit: Hit) -> Drop | None:
        path = hit.path
        for prefix in bounded:
            if path == prefix or path.startswith(prefix + "/") or prefix == "":
                return Drop.EXCLUDED_PATH
        return None

    return excluded_path


class Capture:
    def __init__(
        self,
        *,
        recorder: Recorder[Hit],
        topics: TopicRules,
        clock: Clock,
        exclude_paths: Sequence[str] = (),
        erased: Callable[[], Container[UUID]] | None = None,
    ) -> None:
        self._recorder = recorder
        self._topics = topics
        self._clock = clock
        self._erased = erased
        # Consent first: most visitors without it are answered by that one check, before the request's
        # headers are even read. Then what the page is (personalization asks only that), then who saw it.
        page_steps: list[Step] = [prefetch]
        if exclude_paths:
            page_steps.append(excluded(exclude_paths))
        self.page_steps: tuple[Step, ...] = tuple(page_steps)
        steps: list[Step] = [*page_steps, visitor_id, address]
        if erased is not None:
            steps.append(not_erased(erased))
        self.steps: tuple[Step, ...] = tuple(steps)
        self.dropped: Counter[str] = Counter()
        # The two drops nearly every request makes, as plain numbers (a Counter's item costs a response
        # a few tenths of a microsecond more over HTTP); ``counts()`` has them with the rest.
        self.not_pages = 0
        self.unconsented = 0

    def not_a_page(self) -> None:
        self.not_pages += 1

    def counts(self) -> Counter[str]:
        """Every drop of the capture steps so far, by reason."""
        counts = self.dropped.copy()
        counts[Drop.NOT_A_PAGE] += self.not_pages
        counts[Drop.NO_CONSENT] += self.unconsented
        return counts

    def erased(self, visitor_id: UUID) -> bool:
        """Whether this visitor asked to be forgotten (for events other than page views: the same refusal)."""
        return self._erased is not None and forgotten(self._erased, visitor_id)

    def admit(self, scope: Scope, path: str, visitor: Visitor, incoming: Incoming) -> Hit | None:
        """A served HTML page (GET, 200) to be recorded once it has gone out; None when a step objects
        (counted under its reason)."""
        consent = visitor.consent
        if consent is None or "analytics" not in consent.categories:  # consent, before the hit is read
            self.unconsented += 1
            return None
        return self.admit_hit(read_hit(scope, path, visitor, incoming))

    def admit_hit(self, hit: Hit) -> Hit | None:
        """The steps after consent, for a hit whose visitor allows statistics (``admit``'s, or a beacon's
        that reports a page the server could not see)."""
        for step in self.steps:
            drop = step(hit)
            if drop is not None:
                self.dropped[drop] += 1
                return None
        hit.now = self._clock()
        return hit

    def record(self, hit: Hit, scope: Scope) -> None:
        """Queue the page view of an admitted hit (the app may have labelled its topics meanwhile)."""
        state = scope.get("state")
        if state:
            labels = state.get("koekje_topics") if isinstance(state, dict) else None
            hit.labels = tuple(labels) if isinstance(labels, list) else labels  # not the app's list
        self._recorder.submit(hit)

    def served(self, path: str, incoming: Incoming) -> Hit | None:
        """A served page as personalization sees it (no page-view event, nothing counted, no address read):
        None when the visitor will not see it (a prefetch) or its path is excluded."""
        hit = Hit(path, b"", b"", incoming.purpose, b"", b"", None, None, "")
        return None if any(step(hit) is not None for step in self.page_steps) else hit

    def topics(self, hit: Hit, scope: Scope) -> tuple[str, ...]:
        """A page's topics (for personalization, on the request path): its path's, then those the app
        labelled it with (invalid labels are counted by ``PageViews``, for the recorded page)."""
        state = scope.get("state")
        labels, _ = app_topics(state.get("koekje_topics") if isinstance(state, dict) else None)
        return tuple(dict.fromkeys(self._topics(hit.path) + labels))


class PageViews:
    """The write buffer's step for page views: admitted pages in, stored rows out. Topics from the path's
    rules and the app's labels, the referrer's host (not the site itself), the UTM campaign, the path
    cleaned and clipped (each clipping counted by field), then crawlers out (counted) and device, browser and
    OS in (``classify``). A page whose row cannot be made is dropped and counted, never its whole batch."""

    def __init__(
        self,
        site: str,
        topics: TopicRules,
        classify: Callable[[Sequence[PageView]], list[PageView]],
    ) -> None:
        self._site = site
        self._topics = topics
        self._classify = classify
        self.clipped: Counter[str] = Counter()  # values cut to their bound, by field (the event is kept)
        self.invalid_app_topics = 0
        self.dropped: Counter[str] = Counter()

    def __call__(self, batch: Sequence[Hit]) -> list[PageView]:
        views = []
        for done, page in enumerate(batch):
            share_the_gil(done)
            try:
                views.append(self.row(page))
            except Exception as exc:  # a bug, or input nothing foresaw: this page only, counted
                self.dropped[Drop.INVALID_EVENT] += 1
                log.warning("koekje dropped a page view it could not make a row of: %s", type(exc).__name__)
        return self._classify(views)

    def row(self, page: Hit) -> PageView:
        if page.now is None or page.visitor_id is None or page.ip_prefix is None:
            raise ValueError("a hit the steps did not admit")  # (counted by the caller, never stored)
        visit = page.visit
        labels, invalid = app_topics(page.labels)
        self.invalid_app_topics += invalid
        source, medium, campaign = campaign_of(page.query, self.clipped)
        if len(page.path) > MAX_PATH:
            self.clipped["path"] += 1
        if len(page.referer) > MAX_REFERER:
            self.clipped["referrer"] += 1
        if len(page.user_agent) > MAX_USER_AGENT:
            self.clipped["user_agent"] += 1
        referrer = referrer_host(page.referer.decode("latin-1")) if page.referer else ""
        if referrer and _site_name(referrer) == _site_name(own_host(page.host)):
            referrer = ""  # moving around the site is not a source
        return PageView(
            ts=page.now,
            site=self._site,
            visitor_id=page.visitor_id,
            path=clean_path(page.path),
            topics=tuple(dict.fromkeys(self._topics(page.path) + labels)),
            referrer_host=referrer,
            country=page.country,
            ip_prefix=page.ip_prefix,
            utm_source=source,
            utm_medium=medium,
            utm_campaign=campaign,
            user_agent=page.user_agent[:MAX_USER_AGENT].decode("latin-1"),
            visit_start=visit.start if visit is not None else 0,
            entry=visit is not None and visit.entry,
            returning=visit is not None and visit.returning,
        )


@lru_cache(maxsize=4096)  # a site's paths repeat
def clean_path(path: str) -> str:
    """A path as stored: bounded, without control characters, and encodable (a server that decodes bytes
    that are not UTF-8 into surrogates would otherwise make the whole batch fail to encode)."""
    path = _CONTROL.sub("", path[:MAX_PATH])
    return path if path.isascii() else path.encode("utf-8", "replace").decode("utf-8")


def campaign_of(query: bytes, clipped: Counter[str] | None = None) -> tuple[str, str, str]:
    """``utm_source``, ``utm_medium`` and ``utm_campaign`` of a query string, clipped (counted in
    ``clipped``) and without control characters; every other parameter is dropped (a query can hold
    anything, an e-mail address included)."""
    if query.find(b"utm_") < 0:  # (find: see prefetch)
        return "", "", ""
    found = dict.fromkeys(_UTM, "")
    try:
        pairs = parse_qsl(query[:4096].decode("latin-1"), max_num_fields=64)
    except ValueError:
        return "", "", ""
    for name, value in pairs:
        if name in found and not found[name]:
            found[name] = _CONTROL.sub("", value[:MAX_CAMPAIGN]).strip()
            if len(value) > MAX_CAMPAIGN and clipped is not None:
                clipped[name] += 1
    return found["utm_source"], found["utm_medium"], found["utm_campaign"]


def _site_name(host: str) -> str:
    """A host as a site: ``www.example.nl.`` and ``example.nl`` are one."""
    host = host.rstrip(".")
    return host[4:] if host.startswith("www.") else host


def own_host(host: bytes) -> str:
    """The host name of a ``Host`` header (without the port), as ``referrer_host`` gives names."""
    name = host.decode("latin-1").lower()
    return name.rsplit(":", 1)[0] if not name.endswith("]") else name


def referrer_host(referer: str | None) -> str:
    """The host a visitor came from, if it is a host name: ``<script>``, junk and IP addresses (a
    referrer that is an address can be a person's own machine) become ``""``."""
    if not referer:
        return ""
    try:
        host = urlsplit(referer[:MAX_REFERER]).hostname
    except ValueError:
        return ""
    if not host or not _HOST_NAME.fullmatch(host) or _IPV4.fullmatch(host):
        return ""
    return host
