"""The loader: moves spooled batches into the store, in order, each once.

Page views and cookie sightings go in as they were spooled (JSON rows, one insert per batch, the batch id
as ClickHouse's deduplication token, so loading a batch twice, after a crash between insert and removal,
inserts it once). Consent decisions are placed in the ledger's hash chain here, by the one loader that
writes the ledger, and a batch whose decisions are already there is not inserted again.

A batch the store cannot take just now stays, and the ones after it wait (order is kept); a batch the store
rejects as malformed is moved aside to ``rejected/`` and counted, so one bad file never blocks the rest.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from uuid import uuid4

import msgspec

from .aggregates import Salts
from .clock import Clock
from .ledger import Chain, ConsentRecord, insert_rows
from .publish import Publisher
from .remote import Ownership
from .spool import BATCH_NAME, GROUP_PREFIX, LEFTOVER_SECONDS, TEMP_SUFFIX, Batch, Spool
from .store import Store
from .subjects import ERASABLE, Subjects

log = logging.getLogger("koekje.analytics")

LEDGER = "consent_ledger"
# The texts visitors were shown go in first, then the ledger (chained), whose rows refer to the texts: a
# `koekje consent verify` while the site loads finds no decision without its texts (on one store; a
# replica of a cluster may lag). Then the rest, as they are.
TEXTS = "consent_texts"
RAW_TABLES = ("page_views", "engagement", "cookies_seen")
# Where rows of a visitor erased while they waited in the spool can arrive: each load into these erases again.
LATE = (*ERASABLE, LEDGER)
_records = msgspec.json.Decoder(ConsentRecord)
LOAD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds of publishing after a pass that left nothing waiting (each grid is one query: it may go over).
PUBLISH_BUDGET = 0.5
# One insert takes at most this many batches, or rows: large parts, bounded memory.
MAX_GROUP_BATCHES = 64
MAX_GROUP_ROWS = 200_000
# Crashed writers' half-written batches (visitor data) are looked for this often, so none outlives its hour
# by much in a site that runs for months without a restart.
SWEEP_EVERY = timedelta(seconds=LEFTOVER_SECONDS / 4)
# A crash's group the store has not taken for this long is warned about (before, an outage's moment).
STUCK_WARNING = timedelta(minutes=5)


class Loader:
    def __init__(
        self,
        store: Store,
        spool: Spool,
        site: str,
        clock: Clock,
        *,
        interval: float = 0.25,
        load_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        on_loaded: Callable[[str, int], None] | None = None,
        ownership: Ownership | None = None,
        on_tick: Callable[[], None] | None = None,
        erasures: Subjects | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self._store = store
        self._erasures = erasures  # erased visitors whose late events are erased as they arrive
        self._publisher = publisher  # the dashboard's cells of finished days, a little after each pass
        # Several processes may share one spool: only the one that holds this loads it.
        self._ownership = ownership
        self._on_tick = on_tick  # something every process does now and then (metrics snapshots)
        self._spool = spool
        self._chain = Chain(site, uuid4())
        self._salts = Salts(store, clock)
        self._clock = clock
        # Each round of the thread (the tick) refreshes the erased visitors, tries to take over the spool of
        # a process that has gone and writes the metrics; it loads, when something waits, unless it loaded
        # less than ``load_interval`` ago: batches spooled close together then go in as one insert, a
        # little later. An insert costs the store much whatever its size (embedded chDB: ~20 ms of CPU for
        # 500 rows, ~90 ms for 20,000; benchmarks/RESULTS.md): loading every batch as it was spooled, a busy
        # site spent most of its store's CPU on inserts.
        self._interval = interval
        self._load_interval = load_interval
        self._monotonic = monotonic
        self._on_loaded = on_loaded
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pass_lock = threading.Lock()  # one pass at a time (the thread, or a caller's flush)
        self.loaded: Counter[str] = Counter()  # rows loaded, per table
        self.rejected: Counter[str] = Counter()  # batches moved aside, per table
        self.latency = Histogram(LOAD_BUCKETS)  # seconds per insert
        self.passes = 0  # rounds of the thread, failed ones included
        self._swept: datetime | None = None  # when crashed writers' leftovers were last looked for
        self._stuck_since: dict[str, datetime] = {}  # a crash's group the store would not take, since
        self._warned: set[str] = set()

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
        """Something was spooled: load it now, or once ``load_interval`` has passed since the last load."""
        self._wake.set()

    def flush(self) -> bool:
        """Load everything spooled so far, now; True when the spool is empty of it afterwards."""
        return self.load_pending()

    def _run(self) -> None:
        loaded_at: float | None = None  # when a round last put something in the store (``monotonic``)
        wait = 0.0  # the first round at once: what a stopped or killed site left in the spool goes in
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            stopping = self._stopping
            now = self._monotonic()
            if loaded_at is None or stopping or now - loaded_at >= self._load_interval:
                due, wait = True, self._interval
            else:  # loaded a moment ago: what was spooled since waits (the next round no later than its turn)
                due, wait = False, min(self._interval, loaded_at + self._load_interval - now)
            try:  # a full disk or a vanished directory must not end loading for good: try again next tick
                if self._erasures is not None:
                    self._erasures.refresh()  # every process: the erased visitors it must refuse
                if due:
                    inserts = sum(self.latency.counts)
                    done = self.load_pending()
                    if sum(self.latency.counts) > inserts:
                        loaded_at = now
                    if done and self._publisher is not None and not stopping:
                        self._publisher.step(PUBLISH_BUDGET)
                if self._on_tick is not None:
                    self._on_tick()
            except Exception:
                log.exception("koekje's loader could not finish a pass; it tries again")
            self.passes += 1
            if stopping:
                return

    def load_pending(self) -> bool:
        """One pass over every table's batches, oldest first; True when none is left waiting. In a process
        that does not own the spool, nothing (another process loads it)."""
        if self._ownership is not None and not self._ownership.try_acquire():
            return False
        with self._pass_lock:
            now = self._clock()
            if self._swept is None or now - self._swept > SWEEP_EVERY:
                self._swept = now
                with contextlib.suppress(OSError):  # (the next sweep tries again)
                    self._spool.sweep()  # a worker killed mid-write left its batch half-written
                    # What was set aside is visitor data too: gone when the raw rows would be.
                    self._spool.expire_rejected(self._store.settings.raw_retention_days * 86400.0)
            before = sum(self.loaded[table] for table in LATE)
            # The decisions waiting now, listed before the texts are loaded: a decision spooled meanwhile
            # (its texts, spooled just before it, not loaded yet) waits for the next pass (found by a
            # review: the order alone left that moment open).
            decisions = self._spool.pending(LEDGER)
            done = self._load_table(TEXTS)
            done = self._load_table(LEDGER, decisions) and done
            salted = self._salt(self._salts.draw)
            for table in RAW_TABLES:
                loaded = self._load_table(table)
                if table == "page_views" and loaded and salted:
                    self._salt(self._salts.discard)  # nothing of an older day waits any more
                done = loaded and done
            if self._erasures is not None and sum(self.loaded[table] for table in LATE) > before:
                self._erase_late(self._erasures)
            return done

    def _erase_late(self, erasures: Subjects) -> None:
        waiting = [int(b.name.split("-")[0]) / 1e9 for t in LATE for b in self._spool.pending(t)[:1]]
        try:
            erasures.after_load(min(waiting) if waiting else None)
        except Exception as exc:  # the store went away again: the notes stay, the next pass tries again
            log.debug("koekje could not erase late events now: %s", exc)

    def _salt(self, step: Callable[[], None]) -> bool:
        """Draw or discard the daily salts; when the store cannot, page views are still loaded."""
        try:
            step()
        except Exception as exc:
            log.debug("koekje could not keep the daily salts now: %s", exc)
            return False
        return True

    def _load_table(self, table: str, pending: list[Batch] | None = None) -> bool:
        """Load ``table``'s batches waiting in the spool (or those of ``pending``, listed earlier)."""
        if table != LEDGER and not self._finish_interrupted_groups(table):
            # Not now (the store is away): nothing else of this table either. A new group starting with the
            # same batch would replace the manifest, and go in under another token than the rows that are
            # in already: twice (found by a chaos test).
            return False
        for stray in self._spool.strays(table):
            self._set_aside(table, stray, "it is not a batch of koekje's")
        if pending is None:
            pending = self._spool.pending(table)
        while pending:
            group = [pending[0]] if table == LEDGER else _group(pending)
            try:
                rows = self._load_ledger(group[0]) if table == LEDGER else self._load_raw(table, group)
            except FileNotFoundError:
                pending = pending[len(group) :]  # another loader took it (an owner that was replaced)
                continue
            except Exception as exc:
                if _malformed(exc) and len(group) == 1:
                    self._reject(group[0], exc)
                elif _malformed(exc):
                    if not all(self._load_table_one(table, batch) for batch in group):
                        return False
                else:
                    log.debug("koekje could not load %r yet: %s", group[0].name, exc)
                    return False
                pending = pending[len(group) :]
                continue
            self._loaded(table, rows)
            pending = pending[len(group) :]
        return True

    def _load_table_one(self, table: str, batch: Batch) -> bool:
        try:
            self._loaded(table, self._load_raw(table, [batch]))
        except Exception as exc:
            if not _malformed(exc):
                return False
            self._reject(batch, exc)
        return True

    def _loaded(self, table: str, rows: int) -> None:
        self.loaded[table] += rows
        if self._on_loaded is not None:
            self._on_loaded(table, rows)

    def _load_raw(self, table: str, group: list[Batch]) -> int:
        """Several small batches go in as one insert (ClickHouse makes a part per insert, and wants few
        large ones). A manifest written first names the group (also a group of one), so that after a crash
        the same batches are loaded again as the same group, with the same token, and so only once."""
        manifest = self._manifest(table, group)
        _write_durably(manifest, "\n".join(batch.name for batch in group))
        try:
            return self._finish_group(table, manifest, group)
        except Exception as exc:
            if _malformed(exc):  # refused as a whole, never to be tried again as this group: forget it
                manifest.unlink(missing_ok=True)
            raise

    def _manifest(self, table: str, group: list[Batch]) -> Path:
        return self._spool.root / table / f"{GROUP_PREFIX}{group[0].id}"

    def _finish_group(self, table: str, manifest: Path, group: list[Batch]) -> int:
        token = f"group-{group[0].id}-{group[-1].id}"
        with self.latency.time():
            self._store.insert_files(table, [batch.path for batch in group], token=token)
        for batch in group:
            self._spool.remove(batch)
        manifest.unlink(missing_ok=True)
        return sum(batch.rows for batch in group)

    def _finish_interrupted_groups(self, table: str) -> bool:
        """A group whose loading a crash interrupted: if a batch of it was removed, the insert had succeeded
        (removal comes after it) and the rest only needs removing; else it is loaded again, as before, with
        the same token. False when one could not be finished now (it is tried again, as it is, next pass)."""
        for manifest in sorted((self._spool.root / table).glob(f"{GROUP_PREFIX}*")):
            if manifest.name.endswith(TEMP_SUFFIX):
                continue  # being written (or a crash's leftover, swept in time): never a group
            if manifest.is_symlink() or not manifest.is_file():
                self._set_aside(table, manifest, "it is not a group manifest")
                continue
            names = manifest.read_text(errors="replace").split()
            if not names or not all(BATCH_NAME.fullmatch(name) for name in names):
                # Not a manifest koekje wrote whole (older versions wrote them in place): no group.
                self._set_aside(table, manifest, "it is not a whole group manifest")
                continue
            group = [Batch(name, table, manifest.parent / name) for name in names]
            linked = [batch for batch in group if batch.path.is_symlink()]
            if linked:  # (found by trying: a manifest naming a symbolic link had its target read through)
                for batch in linked:
                    self._set_aside(table, batch.path, "it is a symbolic link, not a batch")
                self._set_aside(table, manifest, "it names a symbolic link")
                continue
            if all(batch.path.exists() for batch in group):
                try:
                    self._loaded(table, self._finish_group(table, manifest, group))
                    self._stuck_since.pop(manifest.name, None)
                except Exception as exc:
                    if not _malformed(exc):
                        self._stuck(manifest.name, exc)
                        return False
                    # Refused as a whole, so none of it went in: its batches go on their own, as any do.
                    manifest.unlink(missing_ok=True)
                continue
            for batch in group:
                self._spool.remove(batch)
            manifest.unlink(missing_ok=True)
        return True

    def _load_ledger(self, batch: Batch) -> int:
        rows = self._insert_ledger(batch)
        self._spool.remove(batch)
        return rows

    def _insert_ledger(self, batch: Batch) -> int:
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
        with self.latency.time():
            insert_rows(self._store, rows)
        self._chain.commit(rows)
        return len(rows)

    def _reject(self, batch: Batch, exc: Exception) -> None:
        # (Not the store's whole message: it quotes the rows, and they are visitor data.)
        self._set_aside(batch.table, batch.path, f"the store refused it: {_reason(exc)}")

    def _set_aside(self, table: str, path: Path, why: str) -> None:
        """``Spool.set_aside``, logged and counted. One that cannot be moved is only logged: never a reason to
        stop loading."""
        try:
            self._spool.set_aside(table, path)
        except FileNotFoundError:
            return  # gone meanwhile
        except OSError as exc:
            log.error("koekje could not move %r aside (%s): %s", path.name, why, exc.strerror)
            return
        # (%r: a file's name is anyone's who could write there; found by trying, a newline forged a log line)
        log.error("koekje moved %r aside to the spool's rejected/: %s", path.name, why)
        self.rejected[table] += 1

    def _stuck(self, manifest: str, exc: Exception) -> None:
        """A crash's group the store does not take: quiet while that is an outage's moment, a warning once
        it has lasted (the table waits behind it: ``koekje spool status`` shows its age growing)."""
        now = self._clock()
        since = self._stuck_since.setdefault(manifest, now)
        if now - since < STUCK_WARNING or manifest in self._warned:
            log.debug("koekje could not finish loading %s yet: %s", manifest, exc)
            return
        self._warned.add(manifest)
        log.warning(
            "koekje has not been able to load the group %r for %s; its table waits behind it: %s",
            manifest, now - since, _reason(exc),
        )  # fmt: skip


def _reason(exc: Exception) -> str:
    """What went wrong, without the data: ClickHouse's error name (``CANNOT_PARSE_INPUT...``), or the kind
    of exception."""
    found = re.findall(r"\(([A-Z][A-Z0-9_]+)\)", str(exc))
    return found[-1] if found else type(exc).__name__


def _malformed(exc: Exception) -> bool:
    """Whether the store refused the batch itself (it will never take it), not that it was unreachable."""
    if isinstance(exc, msgspec.DecodeError | msgspec.ValidationError | UnicodeDecodeError):
        return True
    text = str(exc)
    # (Bytes that are not UTF-8 in a batch: the embedded engine's own message cannot be decoded, and comes
    # as the codec's complaint.)
    return (
        "CANNOT_PARSE" in text
        or "INCORRECT_DATA" in text
        or "TYPE_MISMATCH" in text
        or "codec can't decode" in text
    )


def _group(pending: list[Batch]) -> list[Batch]:
    """The oldest batches, as many as one insert should take."""
    group, rows = [pending[0]], pending[0].rows
    for batch in pending[1:MAX_GROUP_BATCHES]:
        if rows + batch.rows > MAX_GROUP_ROWS:
            break
        group.append(batch)
        rows += batch.rows
    return group


def _write_durably(path: Path, text: str) -> None:
    """Whole or not at all: a full disk or a crash mid-write must not leave an empty manifest."""
    temporary = path.with_name(path.name + TEMP_SUFFIX)
    try:
        with open(temporary, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Histogram:
    """Durations in buckets (upper bounds, seconds), as Prometheus histograms count them."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self.total = 0.0

    @contextlib.contextmanager
    def time(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - start)

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
