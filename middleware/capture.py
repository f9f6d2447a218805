"""Turning a served page into a page-view event, or into a counted reason for not recording it.

Runs on the request path: no I/O, no locks. The steps are ordered; the first that objects names the drop.
"""

from __future__ import annotations

import re
from collections import Counter
from enum import StrEnum
from urllib.parse import urlsplit

from starlette.types import Scope

from koekje.analytics import Clock, PageView, Recorder

from .topics import TopicRules, app_topics
from .visitor import Visitor

MAX_PATH = 1024
# Headers with which browsers announce a speculative load that the visitor may never see.
_PURPOSE_HEADERS = (b"sec-purpose", b"purpose", b"x-moz")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A DNS host name (lowercase, as urlsplit gives it): labels of letters, digits and inner hyphens, with a
# letter somewhere in the last label (so "203.0.113.7" is not a name). IPv6 literals have ":" and fail.
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)
_IPV4 = re.compile(r"[0-9.]+")


class Drop(StrEnum):
    NO_CONSENT = "no_consent"
    NO_VISITOR_ID = "no_visitor_id"
    PREFETCH = "prefetch"
    BAD_ADDRESS = "bad_address"


class Capture:
    def __init__(
        self,
        *,
        site: str,
        recorder: Recorder[PageView],
        topics: TopicRules,
        clock: Clock,
    ) -> None:
        self._site = site
        self._recorder = recorder
        self._topics = topics
        self._clock = clock
        self.dropped: Counter[str] = Counter()

    def page_view(self, scope: Scope, path: str, visitor: Visitor) -> None:
        """Record one served HTML page (GET, 2xx), if this visitor allows it."""
        if not visitor.allows("analytics"):
            self.dropped[Drop.NO_CONSENT] += 1
            return
        visitor_id = visitor.id
        if visitor_id is None:
            self.dropped[Drop.NO_VISITOR_ID] += 1
            return
        referer = purpose = b""
        for name, value in scope["headers"]:
            if name == b"referer":
                referer = value
            elif name in _PURPOSE_HEADERS:
                purpose += value.lower()
        if b"prefetch" in purpose or b"prerender" in purpose:
            self.dropped[Drop.PREFETCH] += 1
            return
        ip_prefix = visitor.prefix
        if ip_prefix is None:
            self.dropped[Drop.BAD_ADDRESS] += 1
            return
        state = scope.get("state")
        labels, invalid = app_topics(state.get("koekje_topics") if isinstance(state, dict) else None)
        if invalid:
            self.dropped["invalid_app_topic"] += invalid
        event = PageView(
            ts=self._clock(),
            site=self._site,
            visitor_id=visitor_id,
            path=clean_path(path),
            topics=tuple(dict.fromkeys(self._topics(path) + labels)),
            referrer_host=referrer_host(referer.decode("latin-1")),
            country=visitor.country,
            ip_prefix=ip_prefix,
        )
        # Only the truncated prefix travels on; the full address stays in this request's memory.
        self._recorder.submit(event)


def clean_path(path: str) -> str:
    """A path as stored: bounded, without control characters."""
    return _CONTROL.sub("", path[:MAX_PATH])


def referrer_host(referer: str | None) -> str:
    """The host a visitor came from, if it is a host name: ``<script>``, junk and IP addresses (a
    referrer that is an address can be a person's own machine) become ``""``."""
    if not referer:
        return ""
    try:
        host = urlsplit(referer[:2048]).hostname
    except ValueError:
        return ""
    if not host or not _HOST_NAME.fullmatch(host) or _IPV4.fullmatch(host):
        return ""
    return host
