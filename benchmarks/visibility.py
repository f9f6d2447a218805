"""How soon a recorded page view can be queried: from the request that served the page to the row being
counted in the embedded store, at the default settings (write buffer flushed every 0.25 s, spool loaded
at most once a second, several batches in one insert).

    .venv/bin/python benchmarks/visibility.py [--seconds 20] [--rate 1000] [--smoke]

Consented page views are sent through the middleware at a steady rate, in process; meanwhile a thread
counts the stored rows every 10 ms, as a dashboard would query. Rows are loaded in the order they were
recorded (the spool keeps it), so the k-th page view is visible once the count reaches k; its latency is
that moment minus the moment its request finished. Reported: p50, p99 and the maximum.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import statistics
import threading
import time
from typing import Any

from request_path import benchmark_site, consent_cookies, scope  # the same page and consented visitor


async def main(seconds: float, rate: int) -> None:
    _, app = benchmark_site()  # everything at its default
    runtime = app.runtime
    await runtime.ensure_started()
    cookie = await consent_cookies(app)
    store, table = runtime.store, runtime.store.table("page_views")
    seen: list[tuple[float, int]] = []  # (when, rows counted)
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            [(rows,)] = store.query(f"SELECT count() FROM {table}")
            seen.append((time.perf_counter(), int(rows)))
            stop.wait(0.01)

    counter = threading.Thread(target=count, daemon=True)
    counter.start()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    served: list[float] = []
    start = time.perf_counter()
    total = int(seconds * rate)
    for k in range(total):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await app(scope(cookie), receive, send)
        served.append(time.perf_counter())
    while not seen or seen[-1][1] < total:
        await asyncio.sleep(0.05)
        if time.perf_counter() - served[-1] > 60:
            raise SystemExit(
                f"only {seen[-1][1]} of {total} page views visible after a minute; "
                f"loaded {dict(runtime.loader.loaded)}, rejected {dict(runtime.loader.rejected)}, "
                f"spooled {runtime.recorder.written}, dropped {dict(runtime.recorder.dropped)}"
            )
    stop.set()
    counter.join()
    await runtime.stop()

    counts = [rows for _, rows in seen]
    latencies = []
    for k, at in enumerate(served):
        first = bisect.bisect_left(counts, k + 1)  # the first poll that counted page view k
        latencies.append(seen[first][0] - at)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99)]
    print(f"{total} consented page views at {rate}/s, counted every 10 ms (default flush and load intervals)")
    worst = latencies[-1]
    print(f"  visible after: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {worst * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=int, default=1000, help="page views per second")
    parser.add_argument("--smoke", action="store_true", help="1 s at 200/s: that it runs, not figures")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.rate = 1, 200
    asyncio.run(main(args.seconds, args.rate))
