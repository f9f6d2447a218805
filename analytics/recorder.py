"""The write buffer between the request path and storage.

``submit`` is what the request path calls: an append to a deque, no I/O and no lock (deque appends are
atomic). A batch thread drains the deque into a sink when a batch is full, on a timer, on ``flush`` and on
``stop``. Every event that does not reach the sink is counted under a reason.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from .settings import RecorderSettings
from .spool import SpoolFull

log = logging.getLogger("koekje.analytics")

E = TypeVar("E")
E_contra = TypeVar("E_contra", contravariant=True)


class Sink(Protocol[E_contra]):
    def write(self, batch: Sequence[E_contra]) -> None: ...


class Recorder(Generic[E]):
    def __init__(self, sink: Sink[E], settings: RecorderSettings | None = None) -> None:
        self._sink = sink
        self._settings = settings or RecorderSettings()
        self._queue: deque[E] = deque()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._submitted = 0  # only the event loop thread writes this
        self._processed = 0  # only the batch thread writes this
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped: Counter[str] = Counter()

    # -- request path -------------------------------------------------------------------------------------

    def submit(self, event: E) -> bool:
        """Queue an event; False (and counted) when the queue is full or the recorder is stopped."""
        if self._stopping or self._thread is None:
            self.dropped["recorder_stopped"] += 1
            return False
        if len(self._queue) >= self._settings.queue_size:
            self.dropped["queue_full"] += 1
            return False
        self._queue.append(event)
        self._submitted += 1
        # Wake the batch thread once when a batch is full, not on every event after that: setting an Event
        # takes a lock and notifies, many times the cost of the append.
        if len(self._queue) >= self._settings.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    @property
    def depth(self) -> int:
        return len(self._queue)

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="koekje-recorder", daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until everything submitted so far has been written or dropped. True when done in time."""
        target = self._submitted
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: self._processed >= target, timeout=timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Drain the queue and stop the batch thread (graceful shutdown)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            log.error("koekje recorder did not drain within %.0f s; %d events lost", timeout, self.depth)
        # Whatever a request queued while the last batch was written is counted, not silently lost.
        self.dropped["recorder_stopped"] += len(self._queue)
        self._queue.clear()
        self._thread = None

    # -- batch thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self._settings.flush_interval)
            self._wake.clear()
            stopping = self._stopping
            while self._queue:
                self._write(self._take_batch())
            if stopping:
                return

    def _take_batch(self) -> list[E]:
        batch: list[E] = []
        while self._queue and len(batch) < self._settings.batch_size:
            batch.append(self._queue.popleft())
        return batch

    def _write(self, batch: list[E]) -> None:
        try:
            self._sink.write(batch)
        except SpoolFull as exc:
            log.error("koekje dropped %d events: %s", len(batch), exc)
            self.dropped["spool_full"] += len(batch)
        except OSError as exc:  # e.g. the disk is full
            log.error("koekje dropped %d events, the spool cannot be written: %s", len(batch), exc)
            self.dropped["spool_error"] += len(batch)
        except Exception:
            log.exception("koekje could not write %d events", len(batch))
            self.dropped["store_error"] += len(batch)
        else:
            self.written += len(batch)
        with self._done:
            self._processed += len(batch)
            self._done.notify_all()
