"""Making consent decisions durable from one thread, many decisions per fsync (group commit).

A decision that grants something is answered only once its record is durable, so the request waits on a
future. A record is durable once its batch is in the spool (fsynced): from there the loader puts it in the
ledger's hash chain, also after a crash, and also when the store is down for a while. Waiting requests are
grouped: whatever arrives while one batch is being fsynced goes into the next, so a burst of decisions costs
a few fsyncs instead of one each, and never holds the store at all.

The same thread keeps the middleware's list of superseded consent ids current (``on_superseded``): it reads
what other processes recorded, so a withdrawn consent stops counting in every worker.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from .batching import BatchThread
from .clock import Clock
from .drops import Drop
from .ledger import ConsentRecord, superseded
from .spool import Spool, SpoolFull
from .store import Store

log = logging.getLogger("koekje.analytics")

Superseded = Callable[[list[tuple[UUID, datetime]]], None]


class LedgerWriter(BatchThread[tuple[ConsentRecord, "Future[None] | None"]]):
    def __init__(
        self,
        store: Store,
        spool: Spool,
        clock: Clock,
        *,
        lookback: timedelta,
        on_superseded: Superseded | None = None,
        on_spooled: Callable[[], None] | None = None,
        poll_interval: float = 5.0,
        max_group: int = 500,
    ) -> None:
        super().__init__("koekje-ledger", interval=poll_interval, batch_size=max_group)
        self._store = store
        self._spool = spool
        self._encoder = msgspec.json.Encoder()
        self._on_spooled = on_spooled
        self._clock = clock
        self._lookback = lookback  # how far back superseded ids still matter (the consent's lifetime)
        self._on_superseded = on_superseded
        self._texts: dict[str, tuple[str, str]] = {}  # texts not yet spooled by this process
        self._cursor: datetime | None = None
        self.written = 0  # records made durable
        self.groups = 0  # fsyncs made: fewer than records when decisions arrive together
        self.dropped: Counter[str] = Counter()

    def register_texts(self, texts_hash: str, lang: str, body: str) -> None:
        """A text the banner shows; stored before the first row that refers to it."""
        self._texts[texts_hash] = (lang, body)

    def submit(self, record: ConsentRecord, *, wait: bool) -> Future[None] | None:
        """Queue a record. With ``wait`` the future resolves once it is durable (or fails with the reason);
        without, a record that cannot be kept is counted as dropped."""
        future: Future[None] | None = Future() if wait else None
        if not self.running:
            self._fail([future], RuntimeError("the consent ledger is not running"), Drop.LEDGER_STOPPED)
            return future
        self._enqueue((record, future), wake=True)
        return future

    # -- the writer thread --------------------------------------------------------------------------------

    def _tick(self) -> None:
        self.poll()

    def _handle(self, batch: list[tuple[ConsentRecord, Future[None] | None]]) -> None:
        self._write([record for record, _ in batch], [future for _, future in batch])

    def _abandon(self, items: list[tuple[ConsentRecord, Future[None] | None]]) -> None:
        self._fail(
            [future for _, future in items], RuntimeError("the consent ledger stopped"), Drop.LEDGER_STOPPED
        )

    def _write(self, records: list[ConsentRecord], futures: list[Future[None] | None]) -> None:
        try:
            if self._texts:
                self._spool_texts()
            self._spool.write("consent_ledger", self._encoder.encode_lines(records), rows=len(records))
        except (SpoolFull, OSError) as exc:
            log.error("koekje could not keep %d consent records: %s", len(records), exc)
            self._fail(futures, exc, Drop.LEDGER_SPOOL_ERROR)
            return
        self.written += len(records)
        self.groups += 1
        if self._on_spooled is not None:
            self._on_spooled()
        self._superseded_locally(records)
        for future in futures:
            if future is not None:
                future.set_result(None)

    def _spool_texts(self) -> None:
        """The texts this process shows, kept once per hash (the store collapses repeats)."""
        now = self._clock()
        rows = [
            {"hash": digest, "lang": lang, "body": body, "first_seen": now}
            for digest, (lang, body) in self._texts.items()
        ]
        self._spool.write("consent_texts", self._encoder.encode_lines(rows), rows=len(rows))
        self._texts.clear()

    def _fail(self, futures: list[Future[None] | None], exc: BaseException, reason: Drop) -> None:
        for future in futures:
            if future is None:
                self.dropped[reason] += 1
            else:
                future.set_exception(exc)

    def _superseded_locally(self, records: list[ConsentRecord]) -> None:
        if self._on_superseded is not None:
            replaced = [(r.previous_id, r.ts) for r in records if r.previous_id]
            if replaced:
                self._on_superseded(replaced)

    def poll(self) -> None:
        """Learn the consent ids that were superseded (the first time: all within their lifetime; then
        what any process recorded since). Runs on the writer thread every ``poll_interval``."""
        if self._on_superseded is None:
            return
        try:
            replaced, self._cursor = superseded(
                self._store, written_since=self._cursor, given_since=self._clock() - self._lookback
            )
        except Exception as exc:
            log.debug("koekje could not read superseded consents: %s", exc)
            return
        if replaced:
            self._on_superseded(replaced)
