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
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from .clock import Clock
from .ledger import ConsentRecord, superseded
from .spool import Spool, SpoolFull
from .store import Store

log = logging.getLogger("koekje.analytics")

Superseded = Callable[[list[tuple[UUID, datetime]]], None]


class LedgerWriter:
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
        self._store = store
        self._spool = spool
        self._encoder = msgspec.json.Encoder()
        self._on_spooled = on_spooled
        self._clock = clock
        self._lookback = lookback  # how far back superseded ids still matter (the consent's lifetime)
        self._on_superseded = on_superseded
        self._poll_interval = poll_interval
        self._max_group = max_group
        self._pending: deque[tuple[ConsentRecord, Future[None] | None]] = deque()
        self._texts: dict[str, tuple[str, str]] = {}  # texts not yet spooled by this process
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._submitted = 0
        self._processed = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._cursor: datetime | None = None
        self.written = 0  # records made durable
        self.groups = 0  # fsyncs made: fewer than records when decisions arrive together
        self.dropped: Counter[str] = Counter()

    def register_texts(self, texts_hash: str, lang: str, body: str) -> None:
        """A text the banner shows; stored before the first row that refers to it."""
        self._texts[texts_hash] = (lang, body)

    # -- any thread ---------------------------------------------------------------------------------------

    def submit(self, record: ConsentRecord, *, wait: bool) -> Future[None] | None:
        """Queue a row. With ``wait`` the future resolves once it is durable (or fails with the reason);
        without, a row that cannot be stored is counted as dropped."""
        future: Future[None] | None = Future() if wait else None
        if self._thread is None or self._stopping:
            if future is not None:
                future.set_exception(RuntimeError("the consent ledger is not running"))
            else:
                self.dropped["ledger_stopped"] += 1
            return future
        with self._done:
            self._submitted += 1
        self._pending.append((record, future))
        self._wake.set()
        return future

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until every row submitted so far is written or has failed. True when done in time."""
        with self._done:
            target = self._submitted
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: self._processed >= target, timeout=timeout)

    @property
    def depth(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="koekje-ledger", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        self._thread = None
        while self._pending:  # only when the thread did not finish in time
            _, future = self._pending.popleft()
            self._fail([future], RuntimeError("the consent ledger stopped"))
            with self._done:
                self._processed += 1
                self._done.notify_all()

    # -- the writer thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        self.poll()
        while True:
            self._wake.wait(self._poll_interval)
            self._wake.clear()
            stopping = self._stopping
            while self._pending:
                self._write_group()
            if stopping:
                return
            self.poll()

    def _write_group(self) -> None:
        group: list[tuple[ConsentRecord, Future[None] | None]] = []
        while self._pending and len(group) < self._max_group:
            group.append(self._pending.popleft())
        records = [record for record, _ in group]
        futures = [future for _, future in group]
        try:
            self._write(records, futures)
        finally:
            with self._done:
                self._processed += len(group)
                self._done.notify_all()

    def _write(self, records: list[ConsentRecord], futures: list[Future[None] | None]) -> None:
        try:
            if self._texts:
                self._spool_texts()
            self._spool.write("consent_ledger", self._encoder.encode_lines(records), rows=len(records))
        except (SpoolFull, OSError) as exc:
            log.error("koekje could not keep %d consent records: %s", len(records), exc)
            self._fail(futures, exc)
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

    def _fail(self, futures: list[Future[None] | None], exc: BaseException) -> None:
        for future in futures:
            if future is None:
                self.dropped["ledger_spool_error"] += 1
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
