"""Everything one visitor's browser does that the audit reports: cookies (and who set them), web storage,
and requests to other hosts.

Cookies are read from the browser's jar after each page has settled, so a cookie is seen however it got
there. Who set it comes from two listeners: the ``Set-Cookie`` headers of every response, and a wrapper
around ``document.cookie`` (installed before any script of the page runs) that reports each write with the
address of the script that made it.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from playwright.sync_api import Error

from .evidence import Cookie, Request, RequestKind, StorageArea, StorageItem
from .site import Site, without_query

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Response
    from playwright.sync_api import Request as BrowserRequest

_BINDING = "__koekjeAuditCookie"
# Runs in every frame before its own scripts. It only reports; the write itself goes ahead unchanged.
_COOKIE_WRITES = """(() => {
  const cookie = Object.getOwnPropertyDescriptor(Document.prototype, "cookie");
  if (!cookie || !cookie.set) return;
  Object.defineProperty(Document.prototype, "cookie", {
    configurable: true,
    enumerable: cookie.enumerable,
    get() { return cookie.get.call(this); },
    set(value) {
      try { window.BINDING(String(value), String(new Error().stack || "")); } catch (e) {}
      cookie.set.call(this, value);
    },
  });
})();""".replace("BINDING", _BINDING)
# The first script address in a stack trace ("at https://host/x.js:1:20"): the script that wrote.
_SCRIPT = re.compile(r"(https?://[^\s()]+?):\d+:\d+")
_KINDS: dict[str, RequestKind] = {
    "script": "script",
    "image": "pixel",
    "ping": "beacon",  # navigator.sendBeacon and <a ping>
    "xhr": "xhr",
    "fetch": "xhr",
    "eventsource": "xhr",
    "websocket": "xhr",
    "stylesheet": "stylesheet",
    "font": "font",
    "media": "media",
}
_STORAGE_KEYS = """() => {
  const keys = (area) => { try { return Object.keys(window[area]); } catch (e) { return []; } };
  return {
    origin: location.origin, localStorage: keys("localStorage"), sessionStorage: keys("sessionStorage"),
  };
}"""


class Activity:
    """Whether a browser context's network has gone quiet: no request in flight, for how long. Streams
    that stay open by design (EventSource, WebSocket) do not count, or a page using one would never settle."""

    def __init__(self, context: BrowserContext) -> None:
        self._open: set[BrowserRequest] = set()
        self._since = time.monotonic()
        context.on("request", self._started)
        context.on("requestfinished", self._ended)
        context.on("requestfailed", self._ended)

    def quiet_for(self) -> float:
        """Seconds since the last request ended; 0 while any is in flight."""
        return 0.0 if self._open else time.monotonic() - self._since

    def _started(self, request: BrowserRequest) -> None:
        if request.resource_type not in ("eventsource", "websocket"):
            self._open.add(request)

    def _ended(self, request: BrowserRequest) -> None:
        if request in self._open:
            self._open.discard(request)
            self._since = time.monotonic()


class Recorder:
    """Listens to one browser context for the whole of one visitor's visit."""

    def __init__(self, context: BrowserContext, site: Site) -> None:
        self.activity = Activity(context)
        self._site = site
        self.page = site.start  # the page being audited: what the evidence is attributed to
        self.requests: list[Request] = []
        self._responses: list[Response] = []
        self._set_by: dict[str, list[str]] = defaultdict(list)  # cookie name -> who set it
        self._cookies: dict[tuple[str, str, str], tuple[str, dict[str, Any], float]] = {}
        self._storage: dict[tuple[str, str, str], StorageItem] = {}
        context.on("request", self._request)
        context.on("response", self._response)
        context.expose_binding(_BINDING, self._script_wrote)
        context.add_init_script(script=_COOKIE_WRITES)

    def observe(self, page: Page) -> None:
        """Take in the state after ``page`` settled: response headers, the cookie jar, web storage."""
        for response in self._responses:
            try:
                headers = response.headers_array()
            except Error:
                continue  # its document is gone; what it set is still in the jar, as set by an unknown source
            for header in headers:
                if header["name"].lower() == "set-cookie" and not _removes(header["value"]):
                    name = header["value"].split(";", 1)[0].partition("=")[0].strip()
                    self._note(name, f"response {without_query(response.url)}")
        self._responses.clear()
        now = time.time()
        for cookie in page.context.cookies():
            key = (cookie["name"], cookie["domain"], cookie["path"])
            first = self._cookies.get(key, (self.page, {}, 0.0))[0]
            self._cookies[key] = (first, dict(cookie), now)  # the latest state: renewals move expiry
        for frame in page.frames:
            try:
                found = frame.evaluate(_STORAGE_KEYS)
            except Error:
                continue  # detached while we looked
            area: StorageArea
            for area in ("localStorage", "sessionStorage"):
                for key in found[area]:
                    item = StorageItem(area, found["origin"], key, self.page)
                    self._storage.setdefault((area, item.origin, key), item)

    def cookies(self) -> tuple[Cookie, ...]:
        return tuple(
            Cookie(
                name=name,
                domain=domain,
                path=path,
                expires=state["expires"] if state["expires"] > 0 else None,
                http_only=state["httpOnly"],
                secure=state["secure"],
                same_site=state["sameSite"],
                page=first,
                seen_at=seen_at,
                set_by=_sources(self._set_by.get(name) or ["script"]),
            )
            for (name, domain, path), (first, state, seen_at) in self._cookies.items()
        )

    def storage(self) -> tuple[StorageItem, ...]:
        return tuple(self._storage.values())

    def _response(self, response: Response) -> None:
        self._responses.append(response)  # its headers are read in observe(): a handler must not wait

    def _note(self, name: str, source: str) -> None:
        if source not in self._set_by[name]:
            self._set_by[name].append(source)

    def _script_wrote(self, source: dict[str, Any], value: str, stack: str) -> None:
        name = value.split(";", 1)[0].partition("=")[0].strip()
        # The first address in the stack is the script that wrote: an external script's own, an inline
        # script's page. A gated inline script has none of its own: banner.js runs it once it is allowed.
        scripts = _SCRIPT.findall(stack)
        if scripts and self._site.banner_script(scripts[0]):
            self._note(
                name, f"a gated script on {without_query(source['frame'].url)} (run by koekje's banner)"
            )
        else:
            self._note(name, f"script {without_query(scripts[0])}" if scripts else "script")

    def _request(self, request: BrowserRequest) -> None:
        parts = urlsplit(request.url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host or self._site.owns(host):
            return
        kind = _KINDS.get(request.resource_type, "other")
        if request.resource_type == "document":
            try:
                kind = "iframe" if request.frame.parent_frame is not None else "other"
            except Error:
                kind = "other"
        self.requests.append(Request(host, kind, without_query(request.url), self.page))


def _sources(found: list[str], shown: int = 3) -> tuple[str, ...]:
    """Who set a cookie, the first few by name: a cookie renewed by every page would list them all."""
    if len(found) <= shown + 1:
        return tuple(found)
    return (*found[:shown], f"and {len(found) - shown} more")


def _removes(set_cookie: str) -> bool:
    """Whether a Set-Cookie header removes its cookie (as koekje does with cookies not consented to).
    Max-Age wins over Expires (RFC 6265, 5.3)."""
    attributes: dict[str, str] = {}
    for attribute in set_cookie.split(";")[1:]:
        key, _, value = attribute.partition("=")
        attributes.setdefault(key.strip().lower(), value.strip())
    max_age = attributes.get("max-age")
    if max_age is not None and max_age.lstrip("-").isdigit():
        return int(max_age) <= 0
    try:
        return parsedate_to_datetime(attributes["expires"]).timestamp() < time.time()
    except (KeyError, TypeError, ValueError):
        return False
