"""The write buffer between the request path and storage.

``submit`` is what the request path calls: an append to a deque, no I/O and no lock (deque appends are
atomic). A batch thread drains the deque into a sink when a batch is full, on a timer, on ``flush`` and on
``stop``. Every event that does not reach the sink is counted under a reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Protocol, TypeVar

from .batching import BatchThread
from .drops import Drop
from .settings import RecorderSettings
from .spool import SpoolFull

log = logging.getLogger("koekje.analytics")

E = TypeVar("E")
E_contra = TypeVar("E_contra", contravariant=True)


class Sink(Protocol[E_contra]):
    def write(self, batch: Sequence[E_contra]) -> None: ...


class Recorder(BatchThread[E]):
    def __init__(self, sink: Sink[E], settings: RecorderSettings | None = None) -> None:
        self._settings = settings = settings or RecorderSettings()
        super().__init__("koekje-recorder", interval=settings.flush_interval, batch_size=settings.batch_size)
        self._sink = sink
        self.written = 0
        self.dropped: Counter[str] = Counter()

    def submit(self, event: E) -> bool:
        """Queue an event (the request path); False, and counted, when the queue is full or the recorder is
        stopped."""
        if not self.running:
            self.dropped[Drop.RECORDER_STOPPED] += 1
            return False
        depth = len(self._queue)
        if depth >= self._settings.queue_size:
            self.dropped[Drop.QUEUE_FULL] += 1
            return False
        self._enqueue(event, wake=depth + 1 >= self._settings.batch_size)
        return True

    def _handle(self, batch: list[E]) -> None:
        try:
            self._sink.write(batch)
        except SpoolFull as exc:
            log.error("koekje dropped %d events: %s", len(batch), exc)
            self.dropped[Drop.SPOOL_FULL] += len(batch)
        except OSError as exc:  # e.g. the disk is full
            log.error("koekje dropped %d events, the spool cannot be written: %s", len(batch), exc)
            self.dropped[Drop.SPOOL_ERROR] += len(batch)
        except Exception:
            log.exception("koekje could not write %d events", len(batch))
            self.dropped[Drop.WRITE_ERROR] += len(batch)
        else:
            self.written += len(batch)

    def _abandon(self, items: list[E]) -> None:
        # Whatever a request queued while the last batch was written is counted, not silently lost.
        self.dropped[Drop.RECORDER_STOPPED] += len(items)
