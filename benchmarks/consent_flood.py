"""A flood of consent decisions and a dashboard query at the same time, in process, on embedded chDB.

    .venv/bin/python benchmarks/consent_flood.py [--decisions 300] [--smoke]

Each decision comes from another network (so no per-network budget applies) and grants statistics, so each
must be durable before it is answered. Measured: the time until all are answered, the ledger inserts they
took, and how long the marketer's topic report takes while they arrive (run alone first, for reference).
The same script runs against an older koekje (PYTHONPATH=...) for a side-by-side figure.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse
from starlette.routing import Route

from koekje.analytics import topic_report, utcnow
from koekje.middleware import Config, KoekjeMiddleware
from koekje.middleware.config import AnalyticsSection


async def decide(app: Any, n: int) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/_koekje/consent", "raw_path": b"/_koekje/consent", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"site.test"), (b"content-type", b"application/json")],
        "client": (f"10.{n // 256 % 256}.{n % 256}.1", 1), "server": ("site.test", 80),  # a /24 each
    }  # fmt: skip
    messages = iter([{"type": "http.request", "body": b'{"categories": ["analytics"]}', "more_body": False}])
    status = 0

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def report(app: Any) -> float:
    store = app.runtime.store
    now = utcnow()
    start = time.perf_counter()
    today = now.date()
    await run_in_threadpool(topic_report, store, "default", today - timedelta(days=30), today, 5)
    return (time.perf_counter() - start) * 1000


async def main(decisions: int) -> None:
    config = Config(
        secret_keys=("benchmark-secret-" + "abcdefghijklmnopqrstuvwxyz0123456789",),
        analytics=AnalyticsSection(data_dir=tempfile.mkdtemp(), spool_dir=tempfile.mkdtemp()),
    )
    app = KoekjeMiddleware(Starlette(routes=[Route("/", lambda r: HTMLResponse("x"))]), config)
    await app.runtime.ensure_started()
    alone = [await report(app) for _ in range(5)]
    statuses: list[int] = []
    during: list[float] = []

    async def flood() -> None:
        async with anyio.create_task_group() as group:
            for n in range(decisions):
                group.start_soon(_record, statuses, decide(app, n))

    async def query_meanwhile() -> None:
        while len(statuses) < decisions:
            during.append(await report(app))

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        group.start_soon(flood)
        group.start_soon(query_meanwhile)
    elapsed = time.perf_counter() - started
    ledger = getattr(app.runtime, "ledger", None)
    inserts = getattr(ledger, "groups", None)
    await app.runtime.stop()
    print(f"{decisions} decisions answered in {elapsed:.2f} s ({statuses.count(200)} x 200)")
    print(f"  ledger inserts: {inserts if inserts is not None else 'one per decision'}")
    print(f"  topic report alone: p50 {statistics.median(alone):.0f} ms")
    print(
        f"  topic report during the flood: p50 {statistics.median(during):.0f} ms, max {max(during):.0f} ms"
    )


async def _record(statuses: list[int], request: Any) -> None:
    statuses.append(await request)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--smoke", action="store_true", help="20 decisions: that it runs, not figures")
    args = parser.parse_args()
    anyio.run(main, 20 if args.smoke else args.decisions)
