"""Page views: the event the middleware produces and the sink that writes batches of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from .store import Store


@dataclass(frozen=True, slots=True)
class PageView:
    """One consented page view. Built on the request path from already-sanitised parts:
    the IP is truncated and the path bounded before an instance exists."""

    ts: datetime
    site: str
    visitor_id: UUID
    path: str
    topics: tuple[str, ...]
    referrer_host: str
    country: str
    ip_prefix: str


_COLUMNS = ("ts", "site", "visitor_id", "path", "topics", "referrer_host", "country", "ip_prefix")


class PageViewSink:
    """Writes batches of page views to the store, column-oriented (one insert per batch)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def write(self, batch: Sequence[PageView]) -> None:
        columns = {name: [getattr(event, name) for event in batch] for name in _COLUMNS}
        self._store.insert_columns("page_views", columns)
