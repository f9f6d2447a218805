"""One page response passing through the middleware: the banner tag goes into the HTML, the visitor
cookie follows the consent, and a served page becomes a page view."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Scope, Send

from .visitor import Visitor

if TYPE_CHECKING:
    from .runtime import Runtime

# How much of an HTML response is held back while looking for </head>; past it the page goes out untouched.
MAX_HELD_BYTES = 256 * 1024
_HEAD_END = re.compile(rb"</head\s*>", re.IGNORECASE)
_OVERLAP = 16  # a match may straddle two chunks


class PageResponse:
    """Wraps ``send`` for one request. Holds nothing beyond this request."""

    def __init__(
        self, runtime: Runtime, scope: Scope, path: str, visitor: Visitor, vid: str | None, send: Send
    ) -> None:
        self._runtime = runtime
        self._scope = scope
        # Read now: a Starlette Mount rewrites root_path in place while the app handles the request.
        self._root_path: str = scope.get("root_path", "")
        self._path = path
        self._visitor = visitor
        self._vid = vid  # the koekje_vid cookie value as received
        self._send = send
        self._is_page = False
        self._held: Message | None = None  # the response start, while the banner tag is not yet placed
        self._body = bytearray()
        self._searched = 0

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._start(message)
        elif message["type"] == "http.response.body":
            await self._body_part(message)
        else:  # e.g. http.response.pathsend: the body does not pass through here, so nothing to inject
            await self._release()
            await self._send(message)

    async def _start(self, message: Message) -> None:
        message["headers"] = headers = list(message.get("headers", ()))
        html = encoded = partial = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-type":
                html = value.startswith(b"text/html")
            elif name == b"content-encoding":
                encoded = True
            elif name == b"content-range":
                partial = True
        get = self._scope["method"] == "GET"
        self._is_page = html and get and message["status"] == 200
        if html:
            self._sync_visitor_cookie(message)
        whole = message["status"] != 206 and not partial and not encoded
        if html and get and whole and self._runtime.inject_banner:
            self._held = message
        else:
            await self._send(message)

    async def _body_part(self, message: Message) -> None:
        more = message.get("more_body", False)
        if not more and self._is_page:
            # Queued before the last byte leaves, so a client that has the page can rely on the event.
            self._runtime.capture.page_view(self._scope, self._path, self._visitor)
        if self._held is None:
            await self._send(message)
            return
        chunk = message.get("body", b"")
        if self._body or more:  # a page in parts: gather them until </head> shows up
            self._body += chunk
        data = self._body or chunk
        match = _HEAD_END.search(data, max(0, self._searched - _OVERLAP))
        self._searched = len(data)
        if match is None and more and len(data) <= MAX_HELD_BYTES:
            return
        if match is not None:
            tag = self._runtime.banner_tag(self._root_path)
            data = data[: match.start()] + tag + data[match.start() :]
            _add_to_content_length(self._held["headers"], len(tag))
        await self._release(bytes(data), more)

    async def _release(self, body: bytes = b"", more: bool = True) -> None:
        """Send the held start, and the body held with it."""
        if self._held is None:
            return
        start, self._held, self._body = self._held, None, bytearray()
        await self._send(start)
        if body or not more:
            await self._send({"type": "http.response.body", "body": body, "more_body": more})

    def _sync_visitor_cookie(self, message: Message) -> None:
        """Analytics consent and no valid visitor id: issue one. An id without consent: remove it."""
        runtime = self._runtime
        if self._visitor.allows("analytics"):
            if self._visitor.id is None:
                self._visitor.id, header = runtime.issue_visitor_id(self._scope)
                message["headers"].append(header)
                # A response that sets a visitor's id must not be kept by shared caches.
                MutableHeaders(raw=message["headers"])["cache-control"] = "private, no-store"
        elif self._vid is not None:
            message["headers"].append(runtime.remove_visitor_id(self._scope))


def _add_to_content_length(headers: list[tuple[bytes, bytes]], extra: int) -> None:
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"content-length":
            headers[i] = (name, str(int(value) + extra).encode("latin-1"))
