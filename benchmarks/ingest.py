"""Ingest into the embedded store: from ``Recorder.submit`` (what the request path calls) to rows committed
in chDB, through the spool and the loader, as koekje runs it.

    .venv/bin/python benchmarks/ingest.py [--events 1000000] [--batch 10000] [--warmup 100000] [--smoke]

Reported: events per second end to end (submit -> spooled -> loaded -> visible to a count), the CPU time
per event of the whole process (request-path side and background threads together), and how much the RSS
grew while they went through (the queue holds at most its default 100000; when it is full this benchmark
waits for it to drain instead of dropping, as a site would). The RSS is read at the start and at the end
with chDB's allocator's free pages given back (``SYSTEM JEMALLOC PURGE``, what it does by itself after 5 s
of quiet), and at the end also as it is, with the pages it keeps for reuse.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from koekje.analytics import PageView, Recorder, RecorderSettings, Store, StoreSettings, migrate, utcnow
from koekje.analytics.events import SpoolSink
from koekje.analytics.loader import Loader
from koekje.analytics.spool import Spool


def rss_mb() -> float:
    """The resident set now (not the peak)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / (1 << 20)


def main(events: int, batch: int, warmup: int) -> None:
    root = Path(tempfile.mkdtemp())
    store = Store(StoreSettings(f"chdb://{root / 'store'}"), prepare=migrate)
    store.open()
    spool = Spool(root / "spool", max_bytes=8 << 30)
    spool.open()
    loader = Loader(store, spool, "s", utcnow)
    recorder: Recorder[PageView] = Recorder(
        SpoolSink(spool, "page_views", loader.wake),
        RecorderSettings(batch_size=batch, flush_interval=0.2),  # the default queue of 100000
    )
    now = datetime.now(UTC)
    visitors = [uuid.uuid4() for _ in range(1000)]
    topics = ("implantologie",)
    made = [
        PageView(now, "s", visitors[i % 1000], f"/p/{i % 500}", topics, "www.google.nl", "NL", "203.0.113.0")
        for i in range(max(events, warmup))
    ]
    loader.start()
    recorder.start()
    for event in made[:warmup]:  # warm up: the engine's caches and buffers fill on the first inserts
        if not recorder.submit(event):
            recorder.flush(timeout=600)
            recorder.submit(event)
    assert recorder.flush(timeout=600)
    while not loader.flush():
        time.sleep(0.05)
    store.command("SYSTEM JEMALLOC PURGE")
    warm = rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    submit_start = time.perf_counter()
    waited = 0.0
    checkpoints = []
    every = max(events // 4, 1)
    for index, event in enumerate(made[:events]):
        if index % every == 0 and index:
            checkpoints.append(f"{index / 1000:g}k: {rss_mb() - warm:+.0f} MB")
        if not recorder.submit(event):  # the queue is full: a real site drops (and counts); here, wait
            pause = time.perf_counter()
            recorder.flush(timeout=600)
            waited += time.perf_counter() - pause
            recorder.submit(event)
    submit = time.perf_counter() - submit_start - waited
    assert recorder.flush(timeout=600)
    while not loader.flush():
        time.sleep(0.05)
    [(count,)] = store.query(f"SELECT count() FROM {store.table('page_views')}")
    count -= warmup
    wall_s = time.perf_counter() - wall
    cpu_s = time.process_time() - cpu
    grown = rss_mb() - warm
    store.command("SYSTEM JEMALLOC PURGE")
    kept = rss_mb() - warm
    recorder.stop()
    loader.stop()
    store.close()
    assert count == events, (count, events)
    print(f"{events} events, batches of {batch}: {events / wall_s:,.0f} events/s end to end ({wall_s:.2f} s)")
    print(f"  submit() on the request path: {submit / events * 1e6:.2f} us/event")
    print(f"  process CPU: {cpu_s / events * 1e6:.2f} us/event (all threads)")
    print(
        f"  RSS grew {kept:.0f} MB over them ({grown:.0f} MB with the free pages chDB's allocator keeps), "
        f"after a warm-up of {warmup} (the events existed before)"
    )
    print(f"  RSS along the way: {', '.join(checkpoints)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=100_000, help="events loaded before measuring")
    parser.add_argument("--smoke", action="store_true", help="20000 events: that it runs, not figures")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.batch, args.warmup = 20_000, 1000, 2000
    main(args.events, args.batch, args.warmup)
