"""The write buffer, writing to real chDB."""

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from koekje.analytics import PageView, PageViewSink, Recorder, RecorderSettings, Store

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def view(i: int) -> PageView:
    return PageView(NOW, "site", uuid.uuid4(), f"/{i}", (), "", "", "203.0.113.0")


def count(store: Store) -> int:
    return int(store.query(f"SELECT count() FROM {store.table('page_views')}")[0][0])


class GatedSink:
    """The real sink, held shut until the test opens the gate (to fill the queue deterministically)."""

    def __init__(self, store: Store) -> None:
        self.sink = PageViewSink(store)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write(self, batch: Sequence[PageView]) -> None:
        self.entered.set()
        assert self.gate.wait(30)
        self.sink.write(batch)


def test_flush_writes_everything_submitted(store: Store) -> None:
    recorder: Recorder[PageView] = Recorder(
        PageViewSink(store), RecorderSettings(batch_size=7, flush_interval=60)
    )
    recorder.start()
    assert all(recorder.submit(view(i)) for i in range(50))
    assert recorder.flush()
    assert count(store) == 50 and recorder.written == 50 and recorder.depth == 0
    recorder.stop()


def test_full_queue_drops_and_counts(store: Store) -> None:
    sink = GatedSink(store)
    recorder: Recorder[PageView] = Recorder(
        sink, RecorderSettings(queue_size=3, batch_size=1, flush_interval=60)
    )
    recorder.start()
    recorder.submit(view(0))
    assert sink.entered.wait(30)  # the batch thread holds event 0; the queue is empty again
    accepted = [recorder.submit(view(i)) for i in range(1, 6)]
    assert accepted == [True, True, True, False, False]
    assert recorder.dropped["queue_full"] == 2
    sink.gate.set()
    assert recorder.flush()
    assert count(store) == 4
    recorder.stop()


def test_store_failure_is_counted_not_raised(store: Store) -> None:
    recorder: Recorder[PageView] = Recorder(PageViewSink(store), RecorderSettings(flush_interval=60))
    recorder.start()
    store.close()
    recorder.submit(view(1))
    assert recorder.flush()
    assert recorder.dropped["write_error"] == 1 and recorder.written == 0
    store.open()
    recorder.submit(view(2))
    assert recorder.flush()
    assert count(store) == 1
    recorder.stop()


def test_stop_drains_and_later_submissions_are_counted(store: Store) -> None:
    recorder: Recorder[PageView] = Recorder(PageViewSink(store), RecorderSettings(flush_interval=60))
    assert not recorder.submit(view(0))  # not started
    recorder.start()
    for i in range(10):
        recorder.submit(view(i))
    recorder.stop()
    assert count(store) == 10
    assert not recorder.submit(view(11))
    assert recorder.dropped["recorder_stopped"] == 2
