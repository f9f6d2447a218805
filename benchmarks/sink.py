"""Cost of writing page views to the embedded store, per event, in batches as the recorder sends them.

    .venv/bin/python benchmarks/sink.py [--batch 1000] [--batches 20] [--smoke]

CPU time matters as much as wall time: the batch thread shares the interpreter (and its GIL) with the
request path.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime

from koekje.analytics import PageView, PageViewSink, Store, StoreSettings, migrate


def main(batch_size: int, batches: int) -> None:
    with Store(StoreSettings(f"chdb://{tempfile.mkdtemp()}")) as store:
        migrate(store)
        sink = PageViewSink(store)
        now = datetime.now(UTC)
        batch = [
            PageView(
                now,
                "s",
                uuid.uuid4(),
                "/implantologie",
                ("implantologie",),
                "www.google.nl",
                "NL",
                "203.0.113.0",
            )
            for _ in range(batch_size)
        ]
        sink.write(batch)  # warm up
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(batches):
            sink.write(batch)
        events = batch_size * batches
        cpu_us = (time.process_time() - cpu) / events * 1e6
        wall_us = (time.perf_counter() - wall) / events * 1e6
        print(f"{batches} batches of {batch_size}: per event cpu {cpu_us:.1f} us, wall {wall_us:.1f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="3 batches of 100: that it runs, not figures")
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.batches = 100, 3
    main(args.batch, args.batches)
