"""Page views: the event the middleware produces, and the sink that spools batches of events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

import msgspec

from .devices import classify
from .drops import Drop
from .spool import Spool
from .store import Store

E = TypeVar("E")


class PageView(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """One consented page view. Built on the request path from already-sanitised parts: the IP is
    truncated, the path bounded and the query reduced to UTM values before an instance exists.
    (A msgspec Struct: made on every consented request, it costs a third of a dataclass. Empty fields are
    left out of the spooled JSON; the store fills in its defaults.)"""

    ts: datetime
    site: str
    visitor_id: UUID
    path: str
    topics: tuple[str, ...]
    referrer_host: str
    country: str
    ip_prefix: str
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    device: str = ""  # desktop, mobile, tablet; "" unknown
    browser: str = ""
    os: str = ""
    visit_start: int = 0  # Unix seconds; with the visitor id, the visit's identity
    entry: bool = False  # the visit's first page
    returning: bool = False  # the visitor had visited before this visit
    # Only until the write buffer's thread has classified it (device, browser, os, or a crawler): the user
    # agent string itself is never spooled or stored.
    user_agent: str = ""


_COLUMNS = tuple(field for field in PageView.__struct_fields__ if field != "user_agent")


class Engagement(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """How long a consented page was visible and how far it was scrolled, as the banner's beacon reported
    when the visitor left it (``POST collect``)."""

    ts: datetime
    site: str
    visitor_id: UUID
    path: str
    visible_ms: int  # 0 .. one day
    scroll: int  # the deepest point reached, percent of the page
    visit_start: int = 0  # the visit it belongs to (Unix seconds), when its cookie was still there
    # Only until the write buffer's thread has told a crawler from a browser (never spooled or stored).
    user_agent: str = ""


class EngagementRows:
    """The write buffer's step for engagement: what crawlers send is dropped (counted), as their page views
    are (found by a helper: a headless browser's page views were left out and its engagement stored); the
    user agent goes no further."""

    def __init__(self) -> None:
        self.dropped: Counter[str] = Counter()

    def __call__(self, batch: Sequence[Engagement]) -> list[Engagement]:
        rows = []
        for event in batch:
            if classify(event.user_agent).bot:
                self.dropped[Drop.BOT] += 1
            else:
                rows.append(msgspec.structs.replace(event, user_agent=""))
        return rows


class PageViewRows:
    """The write buffer's step for page views: crawlers dropped (counted), device, browser and OS filled
    in from the user agent, which goes no further."""

    def __init__(self) -> None:
        self.dropped: Counter[str] = Counter()

    def __call__(self, batch: Sequence[PageView]) -> list[PageView]:
        rows = []
        for view in batch:
            device = classify(view.user_agent)
            if device.bot:
                self.dropped[Drop.BOT] += 1
                continue
            rows.append(
                msgspec.structs.replace(
                    view, device=device.kind, browser=device.browser, os=device.os, user_agent=""
                )
            )
        return rows


class SpoolSink(Generic[E]):
    """Writes each batch of events to the spool as JSON rows (the loader takes them into ``table``)."""

    def __init__(
        self,
        spool: Spool,
        table: str,
        on_spooled: Callable[[], None] | None = None,
        rows: Callable[[Sequence[E]], Sequence[object]] | None = None,
    ) -> None:
        self._spool = spool
        self._table = table
        self._encoder = msgspec.json.Encoder()
        self._on_spooled = on_spooled
        self._rows = rows  # turns a batch into the table's rows (default: the events themselves)

    def write(self, batch: Sequence[E]) -> None:
        rows = batch if self._rows is None else self._rows(batch)
        if not rows:  # e.g. crawlers only
            return
        self._spool.write(self._table, self._encoder.encode_lines(rows), rows=len(rows))
        if self._on_spooled is not None:
            self._on_spooled()


class PageViewSink:
    """Writes batches of page views straight to the store, column-oriented (tests and sample data)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def write(self, batch: Sequence[PageView]) -> None:
        columns = {name: [getattr(event, name) for event in batch] for name in _COLUMNS}
        self._store.insert_columns("page_views", columns)
