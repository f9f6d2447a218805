"""What the pipeline costs a site at a steady rate of consented page views: the process's CPU (every thread:
the write buffer, the spool, the loader and the embedded store's own) per page view, for each load interval.

    .venv/bin/python benchmarks/steady.py [--rate 50] [--seconds 20] [--rounds 3] [--intervals 0.25 1 2]
                                          [--smoke]

Page views are submitted to the recorder at the rate (paced by the clock, as visitors arrive), with the
default write buffer (a batch every 0.25 s), then flushed and loaded, and counted in the store. The load
intervals take turns, round after round, each with a loader of its own on one store, so the machine's noise
falls on all of them alike. A load interval of 0.25 s is about what koekje did before it had one: a pass on
every spooled batch, and a batch every 0.25 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from koekje.analytics import PageView, Recorder, RecorderSettings, Store, StoreSettings, migrate, utcnow
from koekje.analytics.events import SpoolSink
from koekje.analytics.loader import Loader
from koekje.analytics.spool import Spool


def run(store: Store, spool: Spool, interval: float, rate: float, seconds: float) -> tuple[float, int]:
    """Page views at ``rate`` for ``seconds`` through a fresh loader: CPU seconds per view, and inserts."""
    loader = Loader(store, spool, "s", utcnow, load_interval=interval)
    recorder: Recorder[PageView] = Recorder(SpoolSink(spool, "page_views", loader.wake), RecorderSettings())
    visitors = [uuid.uuid4() for _ in range(100)]
    loader.start()
    recorder.start()
    total = int(rate * seconds)
    cpu, start = time.process_time(), time.monotonic()
    for index in range(total):
        # (Paced, not synchronised: a site's visitors come when they come.)
        time.sleep(max(0.0, start + index / rate - time.monotonic()))
        now = datetime.now(UTC)
        event = PageView(now, "s", visitors[index % 100], "/implantologie", ("implantologie",), "", "NL", "")
        assert recorder.submit(event)
    assert recorder.flush()
    recorder.stop()
    loader.stop()  # loads what waits, at once
    used = time.process_time() - cpu
    return used / total, sum(loader.latency.counts)


def main(rate: float, seconds: float, rounds: int, intervals: list[float]) -> None:
    root = Path(tempfile.mkdtemp())
    with Store(StoreSettings(f"chdb://{root / 'store'}"), prepare=migrate) as store:
        spool = Spool(root / "spool")
        spool.open()
        results: dict[float, list[tuple[float, int]]] = {interval: [] for interval in intervals}
        for _ in range(rounds):
            for interval in intervals:
                results[interval].append(run(store, spool, interval, rate, seconds))
        [(stored,)] = store.query(f"SELECT count() FROM {store.table('page_views')}")
    sent = int(rate * seconds) * rounds * len(intervals)
    print(f"{rate:g} consented page views/s for {seconds:g} s, {rounds} rounds; process CPU per page view")
    print(f"{'load interval':>14s} {'CPU ms/view':>12s} {'% of a core':>12s} {'inserts/round':>14s}")
    for interval, runs in results.items():
        per_view = statistics.median(cpu for cpu, _ in runs)
        inserts = statistics.median(n for _, n in runs)
        print(f"{interval:>12g} s {per_view * 1e3:12.3f} {per_view * rate * 100:12.1f} {inserts:14g}")
    verdict = "ok" if stored == sent else "MISMATCH"
    print(f"page views stored: {stored} of {sent} sent ({verdict})")
    if stored != sent:
        raise SystemExit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.25, 1.0, 2.0])
    parser.add_argument("--smoke", action="store_true", help="one short round: that it runs, not figures")
    args = parser.parse_args()
    if args.smoke:
        args.rate, args.seconds, args.rounds, args.intervals = 100, 2, 1, [0.25, 1.0]
    main(args.rate, args.seconds, args.rounds, args.intervals)
