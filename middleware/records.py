"""What a request is read into: the headers koekje reads, the visit a page belongs to, a served page.

msgspec Structs, made in C: one of each per request at most. They live here, in a module setup.py does not
compile, because mypyc would build them without their class options (frozen, gc=False) and so with
another behaviour; the compiled modules that use them import them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

import msgspec


class Incoming(msgspec.Struct, frozen=True, gc=False):
    """The request headers koekje reads, parsed in one pass. Never changed: the cookies may be shared."""

    cookies: Mapping[str, str]  # the name of every cookie sent; the values of koekje's own ("" for others)
    gpc: bool  # Sec-GPC: 1 (or DNT: 1 when configured)
    clipped: bool  # the Cookie header was longer than MAX_COOKIE_HEADER
    referer: bytes = b""
    user_agent: bytes = b""
    host: bytes = b""
    purpose: bytes = b""  # announced speculative loads (Sec-Purpose, Purpose, X-Moz), lower case
    accept_language: str | None = None


class Visit(msgspec.Struct, frozen=True, gc=False):
    """(A msgspec Struct: one is made for every recorded page, in C.)"""

    start: int  # Unix seconds: with the visitor id, the visit's identity
    returning: bool
    entry: bool  # this page began the visit


class Hit(msgspec.Struct, gc=False):
    """One served page, read from the request once, checked by the steps and, once admitted, queued as it
    is: the request's own words (path, query, Referer, User-Agent, Host, the app's topic labels), unparsed,
    and the visitor as may be kept (id, truncated address, country). ``PageViews`` makes the stored row of
    it. (One msgspec Struct, made in C: a recorded page costs one object on the request path.)"""

    path: str
    query: bytes
    referer: bytes
    purpose: bytes  # announced speculative loads (the prefetch step's)
    user_agent: bytes
    host: bytes
    visitor_id: UUID | None  # None: the steps drop it
    ip_prefix: str | None  # the truncated address; None: the steps drop it
    country: str
    now: datetime | None = None  # when it was admitted: the event's time
    visit: Visit | None = None  # the visit it belongs to, once tracked
    labels: object = None  # request.state.koekje_topics as the app left it (checked by PageViews)
