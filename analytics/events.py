"""Page views: the event the middleware produces, and the sink that spools batches of events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

import msgspec

from .spool import Spool
from .store import Store

E = TypeVar("E")


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
