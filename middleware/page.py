"""One page response passing through the middleware: the banner tag goes into the HTML, the visitor
cookie follows the consent, and a served page becomes a page view."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import Message, Scope, Send

from .cookies import delete_cookie, set_cookie
from .visitor import Visitor, new_visitor_cookie, visitor_id

if TYPE_CHECKING:
    from .runtime import Runtime

# How much of an HTML response is held back while looking for </head>; past it the page goes out untouched.
MAX_HELD_BYTES = 256 * 1024
_HEAD_END = re.compile(rb"</head\s*>", re.IGNORECASE)


class PageResponse:
    """Wraps ``send`` for one request. Holds nothing beyond this request."""

    def __init__(
        self, runtime: Runtime, scope: Scope, path: str, visitor: Visitor, vid: str | None, send: Send
    ):
        self._runtime = runtime
        self._scope = scope
        self._path = path
        self._visitor = visitor
        self._vid = vid  # the koekje_vid cookie value as received
        self._send = send
        self._is_page = False
        self._held: Message | None = None  # the response start, while the banner tag is not yet placed
        self._body = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._start(message)
        elif message["type"] == "http.response.body":
            await self._body_part(message)
        else:
            await self._send(message)

    async def _start(self, message: Message) -> None:
        message["headers"] = list(message.get("headers", ()))
        headers = Headers(raw=message["headers"])
        is_html = headers.get("content-type", "").startswith("text/html")
        self._is_page = is_html and self._scope["method"] == "GET" and 200 <= message["status"] < 300
        if is_html:
            self._sync_visitor_cookie(message)
        if (
            is_html
            and self._scope["method"] == "GET"
            and self._runtime.inject_banner
            and "content-encoding" not in headers
        ):
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
        self._body += message.get("body", b"")
        match = _HEAD_END.search(self._body)
        if match is None and more and len(self._body) <= MAX_HELD_BYTES:
            return
        body = self._body
        if match is not None:
            tag = self._runtime.banner_tag(self._scope)
            body = body[: match.start()] + tag + body[match.start() :]
            headers = MutableHeaders(raw=self._held["headers"])
            if "content-length" in headers:
                headers["content-length"] = str(int(headers["content-length"]) + len(tag))
        start, self._held, self._body = self._held, None, b""
        await self._send(start)
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    def _sync_visitor_cookie(self, message: Message) -> None:
        """Analytics consent and no valid visitor id: issue one. An id without consent: remove it."""
        runtime = self._runtime
        name = runtime.config.consent.visitor_cookie
        secure = runtime.secure(self._scope)
        if self._visitor.allows("analytics"):
            if self._visitor.id is None:
                vid = new_visitor_cookie()
                self._visitor.id = visitor_id(vid)
                message["headers"].append(
                    set_cookie(name, vid, max_age=runtime.consent_max_age, secure=secure)
                )
        elif self._vid is not None:
            message["headers"].append(delete_cookie(name, secure=secure))
