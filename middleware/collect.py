"""``POST collect``: what the banner reports that the server could not see.

- ``pageview``: the page on which the visitor gave statistics consent (the server served it before there was
  any), and pages a single-page app shows without asking the server. It goes through capture's steps and
  joins the visit like any served page; only where the page is (``location.pathname`` and ``search``) and
  where the visitor came from (``document.referrer``) come from the beacon, and are as hostile as any
  header: checked, clipped, and reduced to what capture keeps (path, UTM values, referrer host).
- ``engagement``: how long a page was visible and how far it was scrolled, sent when the visitor leaves it.

Same-origin only, small bodies, analytics consent required. A body that is not what the banner sends gets
400 with what is wrong; an event without consent, or for a path that is no page of this site, is dropped and
counted (``Drop``), and the answer is 204 either way: a beacon does not read it.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated
from urllib.parse import unquote

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from koekje.analytics import Clock, Recorder
from koekje.analytics.devices import MAX_USER_AGENT
from koekje.analytics.drops import Drop
from koekje.analytics.events import Engagement
from koekje.analytics.web import SECURITY_HEADERS, is_same_origin, media_type, read_limited

from .capture import MAX_REFERER, Capture, clean_path, read_hit
from .engine import ConsentEngine
from .records import Incoming
from .visitor import Visitor
from .visits import Visits

MAX_COLLECT_BODY = 8192
MAX_EVENTS = 10  # per request: a page view and its engagement, a few SPA views
MAX_VISIBLE_MS = 24 * 3600 * 1000


class PageBeacon(msgspec.Struct, tag="pageview", tag_field="t", forbid_unknown_fields=True):
    path: Annotated[str, msgspec.Meta(max_length=4096)]  # location.pathname + location.search
    referrer: Annotated[str, msgspec.Meta(max_length=MAX_REFERER)] = ""  # document.referrer


class EngagementBeacon(msgspec.Struct, tag="engagement", tag_field="t", forbid_unknown_fields=True):
    path: Annotated[str, msgspec.Meta(max_length=4096)]
    visible_ms: Annotated[int, msgspec.Meta(ge=0, le=MAX_VISIBLE_MS)]
    scroll: Annotated[int, msgspec.Meta(ge=0, le=100)]  # percent of the page


Beacon = PageBeacon | EngagementBeacon
_decode = msgspec.json.Decoder(
    Beacon | Annotated[list[Beacon], msgspec.Meta(min_length=1, max_length=MAX_EVENTS)]
)


class CollectEndpoint:
    def __init__(
        self,
        engine: ConsentEngine,
        capture: Capture,
        visits: Visits,
        engagement: Recorder[Engagement],
        *,
        site: str,
        prefix: str,
        clock: Clock,
    ) -> None:
        self._engine = engine
        self._capture = capture
        self._visits = visits
        self._engagement = engagement
        self._site = site
        self._prefix = prefix
        self._clock = clock
        self.dropped: Counter[str] = Counter()

    async def collect(self, request: Request) -> Response:
        visitor: Visitor = request.scope["koekje"]
        if not is_same_origin(request.headers, visitor.scheme):
            return _error(403, "beacons are only taken from pages of this site (cross-site request refused)")
        if media_type(request.headers) not in ("application/json", "text/plain"):
            return _error(415, "send the events as JSON (application/json, or text/plain as sendBeacon does)")
        body = await read_limited(request, MAX_COLLECT_BODY)
        if body is None:
            return _error(413, f"the request body is larger than {MAX_COLLECT_BODY} bytes")
        try:
            decoded = _decode.decode(body)
        # (RecursionError: nesting deeper than the decoder goes, which a beacon never sends.)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            self.dropped[Drop.BAD_BEACON] += 1
            return _error(400, f"not a beacon koekje knows: {str(exc)[:200]}")
        beacons = decoded if isinstance(decoded, list) else [decoded]
        response = Response(status_code=204, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})
        incoming = self._engine.incoming(request.scope)
        cookies = dict(incoming.cookies)
        renewal = None
        for beacon in beacons:
            where = self._page(beacon.path)
            if where is None:
                self.dropped[Drop.BAD_BEACON] += 1
                continue
            path, query = where
            if not visitor.allows("analytics"):
                self.dropped[Drop.NO_CONSENT] += 1
            elif isinstance(beacon, PageBeacon):
                renewal = (
                    self._page_view(request, visitor, incoming, cookies, path, query, beacon.referrer)
                    or renewal
                )
            else:
                self._engaged(visitor, cookies, path, beacon, incoming.user_agent)
        if renewal is not None:
            response.raw_headers.append(renewal)
        return response

    def _page(self, location: str) -> tuple[str, bytes] | None:
        """The page a beacon names, as the server would have seen it (path decoded, query raw); None for
        anything that is not a page of this site."""
        path, _, query = location.partition("?")
        path = unquote(path.partition("#")[0])
        if not path.startswith("/") or path.startswith("//") or {".", ".."} & set(path.split("/")):
            return None  # not a path a browser's location has (it resolves dot segments)
        if path == self._prefix or path.startswith(self._prefix + "/"):
            return None
        return path, query.partition("#")[0].encode("utf-8")

    def _page_view(
        self,
        request: Request,
        visitor: Visitor,
        incoming: Incoming,
        cookies: dict[str, str],
        path: str,
        query: bytes,
        referrer: str,
    ) -> tuple[bytes, bytes] | None:
        """Record a page the banner reports through capture's steps; the visit cookie renewed, or None."""
        # The browser's user agent and host, as for any page.
        hit = read_hit(request.scope, path, visitor, incoming)
        hit.query, hit.referer = query, referrer.encode("utf-8")  # the page's, not this request's
        admitted = self._capture.admit_hit(hit)
        if admitted is None:
            return None
        assert admitted.now is not None
        admitted.visit, renewal = self._visits.track(
            visitor.consent, cookies, admitted.now, secure=self._engine.secure(visitor)
        )
        # A second page in the same request continues the visit this one began.
        cookies[self._visits.cookie] = f"{admitted.visit.start}.{int(admitted.visit.returning)}"
        self._capture.record(admitted, request.scope)
        return renewal

    def _engaged(
        self,
        visitor: Visitor,
        cookies: dict[str, str],
        path: str,
        beacon: EngagementBeacon,
        user_agent: bytes,
    ) -> None:
        visitor_id = visitor.id
        if visitor_id is None:  # statistics allowed by a cookie from before visitor ids travelled in it
            self.dropped[Drop.NO_VISITOR_ID] += 1
            return
        if self._capture.erased(visitor_id):  # an old cookie, in another tab, of a visitor now forgotten
            self.dropped[Drop.ERASED] += 1
            return
        now = self._clock()
        visit = self._visits.current(cookies, now)
        self._engagement.submit(
            Engagement(
                now,
                self._site,
                visitor_id,
                clean_path(path),
                beacon.visible_ms,
                beacon.scroll,
                visit.start if visit is not None else 0,
                # (Told from a crawler's on the write buffer's thread, as a page view's is.)
                user_agent[:MAX_USER_AGENT].decode("latin-1"),
            )
        )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)
