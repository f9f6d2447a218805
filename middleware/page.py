"""One response of the site passing through the middleware: the visitor's choice is enforced on its cookies,
an implicit decision is recorded with the first page, Consent Mode's default and the banner tags go into the
HTML, and a served page becomes a page view."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from starlette.types import Message, Scope, Send

from .capture import Capture
from .consent import Consent
from .consent_mode import ConsentModeDefault, script_nonce
from .enforce import CookieGuard
from .engine import ConsentEngine, DecisionRefused
from .inject import HeadScanner, body_start, page_language
from .markup import PageBanner, page_address
from .records import Hit, Incoming
from .tags import BannerTags
from .visitor import Visitor
from .visits import Visits

log = logging.getLogger("koekje")

# The response headers the page wrapper reads, found with one lookup per header.
_TYPE, _SET_COOKIE, _ENCODING, _RANGE, _CSP, _CSP_REPORT, _CACHE = range(7)
_RESPONSE_HEADERS = {
    b"content-type": _TYPE,
    b"set-cookie": _SET_COOKIE,
    b"content-encoding": _ENCODING,
    b"content-range": _RANGE,
    b"content-security-policy": _CSP,
    b"content-security-policy-report-only": _CSP_REPORT,
    b"cache-control": _CACHE,
}
# Statuses whose HTML is no page to put a banner in: no body (204, 205, 304), or a redirect's.
_NOT_PAGES = frozenset((204, 205, 304, *range(300, 400)))

# How much of an HTML response is held back while looking for the end of the head, and for how long; past
# either the page goes out untouched. The time is checked as each part of the page arrives: a page that
# stops in the middle of its head stays held until its next part (or its end) comes.
MAX_HELD_BYTES = 256 * 1024
MAX_HELD_SECONDS = 0.5


def header_pairs(message: Message) -> list[tuple[bytes, bytes]]:
    """A response message's headers as koekje's own list of (name, value) pairs, for it to change. (ASGI
    allows [name, value] lists too, which compiled code would refuse.)"""
    headers = list(message.get("headers", ()))
    if any(type(header) is not tuple for header in headers):
        headers = [(bytes(name), bytes(value)) for name, value in headers]
    return headers


class Pages:
    """The long-lived services a page response uses."""

    def __init__(
        self,
        engine: ConsentEngine,
        guard: CookieGuard,
        capture: Capture,
        visits: Visits,
        tags: BannerTags | None,
        consent_mode: ConsentModeDefault | None,
        banner: PageBanner | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.guard = guard
        self.capture = capture
        self.visits = visits
        self.tags = tags
        self.consent_mode = consent_mode
        self.banner = banner  # the banner's markup in the page (with the tags; None: neither)
        self.monotonic = monotonic  # for how long a page in parts has been held
        # Pages koekje left without its banner, by reason (koekje_pages_without_banner_total).
        self.counts: Counter[str] = Counter()
        self._told_encoded = False

    def encoded_by_app(self) -> None:
        """A page the app compressed itself: koekje cannot put its banner in. Counted, and said once, loudly,
        with the fix: a site that forgets its banner would go on without consent to ask for."""
        self.counts["encoded_by_app"] += 1
        if not self._told_encoded:
            self._told_encoded = True
            log.error(
                "koekje: a page came compressed (Content-Encoding) from the app inside KoekjeMiddleware, so "
                "it has no cookie banner. Compress outside koekje instead: add GZipMiddleware before "
                "KoekjeMiddleware (Starlette's add_middleware wraps outermost last: call "
                "app.add_middleware(KoekjeMiddleware, ...) first, then app.add_middleware(GZipMiddleware)), "
                "or let the proxy compress. See docs/banner.md."
            )


class PageResponse:
    """Wraps ``send`` for one request (its ``send`` goes to the app). Holds nothing beyond this request.

    ``visitor`` is the visitor as their cookie says; ``implied`` a decision their region or signals imply
    that the cookie does not carry yet (the app already sees the visitor under it)."""

    __slots__ = (
        "_body",
        "_held",
        "_held_since",
        "_hit",
        "_implied",
        "_incoming",
        "_is_page",
        "_markup",
        "_nonce",
        "_pages",
        "_path",
        "_previous",
        "_root_path",
        "_scanner",
        "_scope",
        "_send",
        "_visitor",
    )

    def __init__(
        self,
        pages: Pages,
        scope: Scope,
        path: str,
        visitor: Visitor,
        incoming: Incoming,
        implied: Consent | None,
        send: Send,
    ) -> None:
        self._pages = pages
        self._scope = scope
        # Read now: a Starlette Mount rewrites root_path in place while the app handles the request.
        self._root_path: str = scope.get("root_path", "")
        self._path = path
        self._previous = visitor.consent  # what the request's cookie carried
        # Under the implied decision, if any: what the app saw, and what is recorded unless that is refused.
        self._visitor = visitor if implied is None else visitor.with_consent(implied)
        self._incoming = incoming
        self._implied = implied
        self._send = send
        self._is_page = False
        self._hit: Hit | None = None  # a page to record once it has gone out
        self._held: Message | None = None  # the response start, while the tags are not yet placed
        self._held_since: float | None = None  # when the first part of a page in parts was held
        self._nonce: str | None = None
        self._body = bytearray()
        self._scanner: HeadScanner | None = None  # only for a page whose start is held
        self._markup = False  # whether the banner's markup goes into this page's body

    async def send(self, message: Message) -> None:
        """The app's ``send``: a coroutine function, as a ``send`` is (an app may make a task of what it
        returns; asgiref's WsgiToAsgi checks). Its work is done when it runs, in the order the app's messages
        run. The steps below return what to await instead of being coroutines themselves: a message koekje
        passes on goes to the server's ``send`` with one coroutine of koekje's around it, not two (each costs
        every response over HTTP)."""
        kind = message["type"]
        if kind == "http.response.start":
            sent = self._start(message)
        elif kind == "http.response.body":
            sent = self._body_part(message)
        else:  # e.g. http.response.pathsend, zerocopy: the body does not pass through here, nothing to inject
            # (What was held of the page goes first, as it came: found by trying, a zerocopy part after a
            # held one lost the held bytes.)
            await self._release(bytes(self._body), True)
            sent = self._send(message)
        if sent is not None:
            await sent

    def _start(self, message: Message) -> Awaitable[None] | None:
        """The response's headers: the visitor's choice enforced on them, the page held if tags go into it
        (None: nothing to send yet), else the server's ``send`` of them."""
        message["headers"] = headers = header_pairs(message)
        html = encoded = partial = sets_cookies = cached = False
        # Content-Security-Policy (several are several policies), and -Report-Only, whose nonce spares the
        # site a report per page: lists made only for a response that has them.
        policies: list[bytes] | None = None
        reported: list[bytes] | None = None
        for name, value in headers:
            # (Lower case is what frameworks send: looked up as it is, without making a lower-case copy.)
            kind = _RESPONSE_HEADERS.get(name if name.islower() else name.lower())
            if kind is None:
                continue
            if kind == _TYPE:
                html = value.lstrip()[:9].lower() == b"text/html"
            elif kind == _SET_COOKIE:
                sets_cookies = True
            elif kind == _ENCODING:
                encoded = True
            elif kind == _RANGE:
                partial = True
            elif kind == _CSP:
                if policies is None:
                    policies = []
                policies.append(value)
            elif kind == _CSP_REPORT:
                if reported is None:
                    reported = []
                reported.append(value)
            else:
                cached = True
        method = self._scope["method"]
        get = method == "GET"
        self._is_page = html and get and message["status"] == 200
        if not self._is_page:
            self._pages.capture.not_a_page()
        if self._implied is not None:
            self._record_implied(self._is_page)
        renewal = self._admit() if self._is_page else None
        added = False
        if sets_cookies or self._incoming.cookies or self._implied is not None:
            added = self._cookies(headers, sets_cookies, renewal)
        elif renewal is not None:
            headers.append(renewal)
        if added:
            # A response that sets or removes a visitor's cookies must not be kept by shared caches.
            _cache_control(headers, b"private, no-store", cached)
        elif renewal is not None:
            _private(headers, cached)
        pages = self._pages
        whole = message["status"] != 206 and not partial and not encoded
        injects = pages.tags is not None or pages.consent_mode is not None
        if encoded and html and get and message["status"] == 200 and injects:
            pages.encoded_by_app()
        # HEAD too: its headers (Content-Length) must be those of GET, whose body it would have been.
        bodied = message["status"] not in _NOT_PAGES
        if html and (get or method == "HEAD") and whole and injects and bodied:
            self._nonce = script_nonce(policies or ()) or script_nonce(reported or ())
            self._scanner = HeadScanner(MAX_HELD_BYTES)
            self._held = message
            self._markup = pages.banner is not None and pages.banner.wanted(self._visitor.consent)
            return None
        return self._send(message)

    def _record_implied(self, page: bool) -> None:
        """A decision the visitor's region or signals imply is recorded with the first page, and only then
        does its cookie go out. On any other response, or when this network is recording too many, it is
        not: what it grants is not applied (a narrowing, such as GPC's, still is, unrecorded)."""
        implied, previous = self._implied, self._previous
        assert implied is not None
        grants = previous is None or implied.widens(previous)
        if page:
            try:
                engine = self._pages.engine
                engine.record(self._visitor, implied, "", previous=previous, wait=False, charge=bool(grants))
                return
            except DecisionRefused:
                pass
        self._implied = None
        if grants:
            self._visitor = self._visitor.with_consent(previous)

    def _admit(self) -> tuple[bytes, bytes] | None:
        """Whether this page will be recorded: if so, it joins the visitor's visit, and the Set-Cookie that
        renews the visit's cookie is returned."""
        pages, visitor = self._pages, self._visitor
        hit = self._hit = pages.capture.admit(self._scope, self._path, visitor, self._incoming)
        if hit is None:
            return None
        assert hit.now is not None
        hit.visit, renewal = pages.visits.track(
            visitor.consent, self._incoming.cookies, hit.now, secure=pages.engine.secure(visitor)
        )
        return renewal

    def _cookies(
        self, headers: list[tuple[bytes, bytes]], sets_cookies: bool, renewal: tuple[bytes, bytes] | None
    ) -> bool:
        """Enforce the visitor's choice on the app's cookies and the browser's; add koekje's own (the visit's
        ``renewal`` first, after the app's are filtered: only koekje sets koekje's cookies). True when koekje
        added a Set-Cookie other than the renewal."""
        pages, visitor = self._pages, self._visitor
        engine = pages.engine
        consent = visitor.consent
        added = []
        guard = pages.guard
        if guard.enabled:
            if sets_cookies:
                guard.filter(headers, consent, self._path)
            if self._incoming.cookies and not guard.only_own(self._incoming.cookies):
                added += guard.expiries(self._incoming.cookies, consent, secure=engine.secure(visitor))
        if self._implied is not None:
            added += engine.cookie_headers(self._implied, visitor, self._incoming)
        elif self._incoming.cookies:
            added += engine.upkeep_headers(visitor, self._incoming)
        if renewal is not None:
            headers.append(renewal)
        headers += added
        return bool(added)

    def _body_part(self, message: Message) -> Awaitable[None] | None:
        more = message.get("more_body", False)
        if not more and self._is_page:
            self._served()
        if self._held is None:
            return self._send(message)
        return self._held_part(message, more)

    async def _held_part(self, message: Message, more: bool) -> None:
        """A part of a page whose start is held while the end of its head is looked for."""
        held = self._held
        assert held is not None
        chunk = message.get("body", b"")
        if not more and not chunk and not self._body and self._scope["method"] == "HEAD":
            # HEAD answered without the page (a file's, say): what GET's would grow by cannot be counted, so
            # its Content-Length goes rather than be wrong (HEAD may leave it out).
            headers = _changed_page(held["headers"], 0, b"Cookie")
            held["headers"] = [(name, value) for name, value in headers if name.lower() != b"content-length"]
            await self._release(b"", False)
            return
        if self._body or more:  # a page in parts: gather them until the end of the head shows up
            self._body += chunk
        data = self._body or chunk
        scanner = self._scanner
        assert scanner is not None
        pages = self._pages
        if not more and data is chunk:  # the whole page in one piece
            found = scanner.whole(chunk, body=self._markup)
            final = True
        else:
            if self._held_since is None:
                self._held_since = pages.monotonic()
            late = pages.monotonic() - self._held_since > MAX_HELD_SECONDS
            final = not more or len(data) > MAX_HELD_BYTES or late
            found = scanner.feed(data, final=final)
            if late and not found:
                # A page whose head is slow to arrive goes out as it is, not held back: without the banner.
                pages.counts["slow_head"] += 1
                await self._release(bytes(data), more)
                return
        if not found and not final:
            return
        body = None
        if found and self._markup and not scanner.fallback:
            assert scanner.head_end is not None
            body = scanner.body if scanner.body is not None else body_start(data, scanner.head_end, final)
            if body is None:  # the head has ended, the body's start tag not yet arrived
                return
        if not found:
            pages.counts["head_not_found"] += 1
        else:
            if scanner.fallback:
                pages.counts["tags_before_unknown_markup"] += 1
            data, extra, by_language = self._insert(bytes(data), body)
            # What koekje put in follows the visitor's cookie (their choice, the banner or not), and the
            # banner's words their Accept-Language when the page does not name its language.
            vary = b"Accept-Language" if by_language else None
            held["headers"] = _changed_page(held["headers"], extra, b"Cookie", vary)
        await self._release(bytes(data), more)

    def _served(self) -> None:
        """The page is going out: its page view is queued (before the last byte leaves, so a client that
        has the page can rely on the event), and the visitor's personalization profile fed."""
        capture, hit, visitor = self._pages.capture, self._hit, self._visitor
        if hit is not None:
            capture.record(hit, self._scope)
        consent = visitor.consent
        if consent is not None and "personalization" in consent.categories:
            if hit is None:
                hit = capture.served(self._path, self._incoming)
            if hit is not None:
                # The path as the browser asked for it (what the app's links and request.url.path say).
                path = self._root_path + self._path
                self._pages.engine.profiles.feed(consent, path, capture.topics(hit, self._scope))

    def _insert(self, data: bytes, body: int | None) -> tuple[bytes, int, bool]:
        """The page with Consent Mode's default before its first script, the banner tags at the end of its
        head and, at ``body``, the start of its body, the banner's markup; how many bytes that added; and
        whether the markup's language came from Accept-Language. (Joined once from views of the page: a
        page is copied once, not once per insertion.)"""
        scanner, pages = self._scanner, self._pages
        assert scanner is not None
        head_end = scanner.head_end
        assert head_end is not None
        tags = pages.tags.render(self._root_path, self._nonce) if pages.tags is not None else b""
        page = memoryview(data)
        parts: list[bytes | memoryview] = []
        if pages.consent_mode is not None:
            default = pages.consent_mode.script(self._visitor.consent, self._nonce)
            first = scanner.first_script(data)
            first = head_end if first is None else first
            parts += (page[:first], default, page[first:head_end])
        else:
            parts.append(page[:head_end])
        parts.append(tags)
        by_language = False
        if body is None:
            parts.append(page[head_end:])
        else:
            markup, by_language = self._banner_markup(data, head_end)
            parts += (page[head_end:body], *markup, page[body:])
        changed = b"".join(parts)
        return changed, len(changed) - len(data), by_language

    def _banner_markup(self, data: bytes, head_end: int) -> tuple[tuple[bytes, ...], bool]:
        banner, scanner = self._pages.banner, self._scanner
        assert banner is not None and scanner is not None
        scope = self._scope
        lang = scanner.lang if scanner.body is not None else page_language(data, head_end)
        markup = banner.render(
            self._visitor.consent, lang, self._incoming.accept_language, self._root_path, page_address(scope)
        )
        return markup, lang is None

    async def _release(self, body: bytes = b"", more: bool = True) -> None:
        """Send the held start, and the body held with it."""
        if self._held is None:
            return
        start, self._held, self._body = self._held, None, bytearray()
        await self._send(start)
        if body or not more:
            await self._send({"type": "http.response.body", "body": body, "more_body": more})


# Cache-Control as the app said it -> as it goes out on a page that renews the visit cookie. An app says a
# handful of different things (one per kind of page), so the answers are kept; a new one is worked out.
_PRIVATE: dict[tuple[bytes, ...], bytes] = {}
_MAX_PRIVATE = 256


def _private(headers: list[tuple[bytes, bytes]], said_any: bool = True) -> None:
    """A page that renews the visit cookie is this visitor's: no shared cache may keep it. The browser's own
    cache (and its back/forward cache) may, so only ``private`` is added to what the app said (and
    ``public`` and ``s-maxage``, which speak to shared caches, go). Every Cache-Control header the app sent,
    whatever its case, becomes one: a cache that reads only the first must not miss ours. (``said_any``:
    whether the app sent Cache-Control at all; without, ``private`` is all there is to say.)"""
    if not said_any:
        headers.append((b"cache-control", b"private"))
        return
    said = tuple(value for name, value in headers if name.lower() == b"cache-control")
    value = _PRIVATE.get(said)
    if value is None:
        value = _private_value(said)
        if len(_PRIVATE) >= _MAX_PRIVATE:
            _PRIVATE.clear()
        _PRIVATE[said] = value
    _cache_control(headers, value)


def _private_value(said: tuple[bytes, ...]) -> bytes:
    directives = [d.strip() for value in said for d in value.split(b",") if d.strip()]
    names = {d.partition(b"=")[0].strip().lower() for d in directives}
    # ("private" with a list of fields is a shared cache's to keep, without them.)
    if b"no-store" in names or any(d.lower() == b"private" for d in directives):
        return b", ".join(directives)
    shared = (b"public", b"s-maxage", b"private")
    kept = [d for d in directives if d.partition(b"=")[0].strip().lower() not in shared]
    return b", ".join([b"private", *kept])


def _cache_control(headers: list[tuple[bytes, bytes]], value: bytes, said_any: bool = True) -> None:
    """``value`` as the response's one Cache-Control header (any the app sent, in any case, replaced)."""
    if said_any:
        headers[:] = [(name, v) for name, v in headers if name.lower() != b"cache-control"]
    headers.append((b"cache-control", value))


def _length(value: bytes) -> int | None:
    """A Content-Length: digits, or a list of the same digits ("118, 118", which HTTP allows; found by
    trying: it was a 500). None for anything else."""
    lengths = {part.strip() for part in value.split(b",")}
    if len(lengths) != 1:
        return None
    [length] = lengths
    return int(length) if length.isdigit() and len(length) <= 18 else None


def _changed_page(
    headers: list[tuple[bytes, bytes]], extra: int, *vary: bytes | None
) -> list[tuple[bytes, bytes]]:
    """The headers of a page that grew by ``extra`` bytes, in one pass. Its ETag and Last-Modified named the
    app's page, and byte ranges of this one would not match the app's: a resumed or conditional request
    (If-Range) must not mix the two. What koekje put in follows ``vary`` (the visitor's cookie, and
    Accept-Language when the banner's words came from it): added to the response's Vary, one header, the
    app's own entries kept."""
    changed = []
    said: list[bytes] = []
    for name, value in headers:
        lower = name if name.islower() else name.lower()
        if lower == b"content-length":
            length = _length(value)
            if length is None:
                continue  # not one length: none, rather than a wrong one (the server sends it chunked)
            value = str(length + extra).encode("latin-1")
        elif lower == b"etag" or lower == b"accept-ranges" or lower == b"last-modified":
            continue
        elif lower == b"vary":
            said += (v.strip() for v in value.split(b","))
            continue
        changed.append((name, value))
    if not said:  # the common case
        changed.append((b"vary", b", ".join(name for name in vary if name is not None)))
        return changed
    if b"*" in said:
        changed.append((b"vary", b", ".join(v for v in said if v)))
        return changed
    known = {v.lower() for v in said}
    added = [name for name in vary if name is not None and name.lower() not in known]
    changed.append((b"vary", b", ".join([*(v for v in said if v), *added])))
    return changed
