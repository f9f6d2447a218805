"""A queue drained by a thread of its own, in batches: what the page-view recorder and the consent ledger
writer share.

``_enqueue`` is an append to a deque (atomic, no lock). The thread takes batches when woken (a batch is
full, ``flush``, ``stop``) or every ``interval``; ``flush`` waits until everything queued before it has
been handled; ``stop`` drains, then hands what is left (only when the thread did not finish in time) to
``_abandon``, so nothing leaves uncounted.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

# How many items a batch loop handles between two chances for other threads to take the GIL.
SHARE_EVERY = 256


def share_the_gil(done: int) -> None:
    """Called by a loop over a batch with the count of items it has done: now and then, let other threads
    have the GIL. Compiled code (setup.py) never gives the GIL up by itself, only the interpreter's loop
    does (every 5 ms when asked): turning 10,000 page views into rows held the site's event loop for ~40 ms.
    ``time.sleep(0)`` releases it, and a thread that asked for it takes it."""
    if done % SHARE_EVERY == SHARE_EVERY - 1:
        time.sleep(0)


class BatchThread(Generic[T]):
    def __init__(self, name: str, *, interval: float, batch_size: int) -> None:
        self._name = name
        self._interval = interval
        self._batch_size = batch_size
        self._queue: deque[T] = deque()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._submitted = 0
        self._processed = 0
        self._stopping = False
        # (Not `_thread`: compiled by mypyc, that attribute becomes a C field `__thread`, a C keyword.)
        self._runner: threading.Thread | None = None

    # -- to be provided -----------------------------------------------------------------------------------

    def _handle(self, batch: list[T]) -> None:
        raise NotImplementedError

    def _abandon(self, items: list[T]) -> None:
        """Items the thread did not get to before ``stop`` gave up waiting."""
        raise NotImplementedError

    def _tick(self) -> None:
        """Something to do on every round of the thread (nothing, unless overridden)."""

    # -- any thread ---------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._stopping

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def submitted(self) -> int:
        return self._submitted

    def _enqueue(self, item: T, *, wake: bool) -> None:
        self._queue.append(item)
        self._submitted += 1  # (the GIL makes this safe enough for a target that only grows)
        if wake and not self._wake.is_set():  # setting an Event takes a lock: once is enough
            self._wake.set()

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until everything queued so far has been handled. True when done in time."""
        target = self._submitted
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: self._processed >= target, timeout=timeout)

    def start(self) -> None:
        if self._runner is None:
            self._stopping = False
            self._runner = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._runner.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Drain and stop (graceful shutdown); False when the thread did not finish in time."""
        thread = self._runner
        if thread is None:
            return True
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        self._runner = None
        left = []
        while self._queue:
            left.append(self._queue.popleft())
        if left:
            self._abandon(left)
            self._count(len(left))
        return not thread.is_alive()

    # -- the thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        self._tick()
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            stopping = self._stopping
            while self._queue:
                batch = self._take()
                try:
                    self._handle(batch)
                finally:
                    self._count(len(batch))
            if stopping:
                return
            self._tick()

    def _take(self) -> list[T]:
        batch: list[T] = []
        queue = self._queue
        while queue and len(batch) < self._batch_size:
            batch.append(queue.popleft())
        return batch

    def _count(self, handled: int) -> None:
        with self._done:
            self._processed += handled
            self._done.notify_all()
