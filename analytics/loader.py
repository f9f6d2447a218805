"""The loader: moves spooled batches into the store, in order, each once.

Page views and cookie sightings go in as they were spooled (JSON rows, one insert per batch, the batch id
as ClickHouse's deduplication token, so loading a batch twice, after a crash between insert and removal,
inserts it once). Consent decisions are placed in the ledger's hash chain here, by the one loader that
writes the ledger, and a batch whose decisions are already there is not inserted again.

A batch the store cannot take just now stays, and the ones after it wait (order is kept); a batch the store
rejects as malformed is moved aside to ``rejected/`` and counted, so one bad file never blocks the rest.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from uuid import uuid4

import msgspec

from .clock import Clock
from .ledger import Chain, ConsentRecord, insert_rows
from .remote import Ownership
from .spool import Batch, Spool
from .store import Store

log = logging.getLogger("koekje.analytics")

LEDGER = "consent_ledger"
# Spooled tables loaded as they are; the ledger is chained first.
RAW_TABLES = ("page_views", "cookies_seen", "consent_texts")
_records = msgspec.json.Decoder(ConsentRecord)


class Loader:
    def __init__(
        self,
        store: Store,
        spool: Spool,
        site: str,
        clock: Clock,
        *,
        interval: float = 0.25,
        on_loaded: Callable[[str, int], None] | None = None,
        ownership: Ownership | None = None,
    ) -> None:
        self._store = store
        # Several processes may share one spool: only the one that holds this loads it.
        self._ownership = ownership
        self._spool = spool
        self._chain = Chain(site, uuid4())
        self._clock = clock
        self._interval = interval
        self._on_loaded = on_loaded
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pass_lock = threading.Lock()  # one pass at a time (the thread, or a caller's flush)
        self.loaded: Counter[str] = Counter()  # rows loaded, per table
        self.rejected: Counter[str] = Counter()  # batches moved aside, per table

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="koekje-loader", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """One last pass (what can be loaded now is), then stop. What stays is loaded at the next start."""
        thread = self._thread
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Something was spooled: look now rather than at the next tick."""
        self._wake.set()

    def flush(self) -> bool:
        """Load everything spooled so far, now; True when the spool is empty of it afterwards."""
        return self.load_pending()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            stopping = self._stopping
            self.load_pending()
            if stopping:
                return

    def load_pending(self) -> bool:
        """One pass over every table's batches, oldest first; True when none is left waiting. In a process
        that does not own the spool, nothing (another process loads it)."""
        if self._ownership is not None and not self._ownership.try_acquire():
            return False
        with self._pass_lock:
            done = self._load_table(LEDGER)
            for table in RAW_TABLES:
                done = self._load_table(table) and done
            return done

    def _load_table(self, table: str) -> bool:
        for batch in self._spool.pending(table):
            try:
                rows = self._load_ledger(batch) if table == LEDGER else self._load_raw(batch)
            except FileNotFoundError:
                continue  # another loader took it (an owner that was replaced)
            except Exception as exc:
                if _malformed(exc):
                    self._reject(batch, exc)
                    continue
                log.debug("koekje could not load %s yet: %s", batch.name, exc)
                return False
            self._spool.remove(batch)
            self.loaded[table] += rows
            if self._on_loaded is not None:
                self._on_loaded(table, rows)
        return True

    def _load_raw(self, batch: Batch) -> int:
        payload = batch.read()
        self._store.insert_raw(batch.table, payload, token=batch.id)
        return payload.count(b"\n") + 1 if payload else 0

    def _load_ledger(self, batch: Batch) -> int:
        records = [_records.decode(line) for line in batch.read().splitlines() if line]
        if not records:
            return 0
        present = self._store.query(
            f"SELECT count() FROM {self._store.table(LEDGER)} WHERE consent_id IN {{ids:Array(UUID)}}",
            {"ids": [r.consent_id for r in records]},
        )[0][0]
        if present == len(records):
            return 0  # loaded before a crash kept the file: not again (the chain would fork)
        if not self._chain.anchored:
            self._chain.anchor(self._store)
        rows = self._chain.link(records)
        insert_rows(self._store, rows)
        self._chain.commit(rows)
        return len(rows)

    def _reject(self, batch: Batch, exc: Exception) -> None:
        log.error("koekje moved a malformed batch aside (%s): %s", batch.name, exc)
        rejected = self._spool.root / "rejected"
        rejected.mkdir(mode=0o700, exist_ok=True)
        batch.path.rename(rejected / f"{batch.table}-{batch.name}")
        self.rejected[batch.table] += 1


def _malformed(exc: Exception) -> bool:
    """Whether the store refused the batch itself (it will never take it), not that it was unreachable."""
    if isinstance(exc, msgspec.DecodeError | msgspec.ValidationError | UnicodeDecodeError):
        return True
    text = str(exc)
    return "CANNOT_PARSE" in text or "INCORRECT_DATA" in text or "TYPE_MISMATCH" in text
