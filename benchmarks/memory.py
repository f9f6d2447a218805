"""How much memory a site's process keeps as it serves consented page views: the demo site (koekje.demo)
behind KoekjeMiddleware, called in process through ASGI (no server), every request a consented visitor's
page view recorded into a temporary embedded chDB by the normal runtime (write buffer -> spool -> loader,
the dashboard's publisher in the loader's thread).

    .venv/bin/python benchmarks/memory.py [--requests 1000000] [--warmup 100000] [--samples 20]
                                          [--pages-per-visitor 20] [--active 200] [--tracemalloc] [--smoke]

Visitors come and go as on a site: ``--active`` of them browse at a time, taking turns. Each gives consent
(statistics and personalization, through the real endpoint, from a network of its own), views
``--pages-per-visitor`` of the demo's pages (both languages; the first with a referrer or a campaign),
sending back the cookies the site set (the visit cookie, renewed on every page), and then makes room for a
new visitor. So whatever koekje keeps per visitor (verified consent cookies, personalization profiles,
decision budgets per network) sees a steady stream of new visitors over the run.

RSS is VmRSS from /proc/self/status. The baseline is taken after ``--warmup`` requests (the bounded caches
filled: 100,000 requests bring 5,000 visitors, as many as koekje keeps profiles of), with the queues empty,
the spool loaded and chDB's allocator's free pages given back (``SYSTEM JEMALLOC PURGE``: what it does by
itself after 5 s of quiet); then ``--samples`` samples over the ``--requests`` measured, as they come, and
the last one in the same state as the baseline. Each sample also says where the memory is, as far as can be
told from outside: chDB's allocator (allocated, and resident with the free pages it keeps), the C library's
heap, Python's block count. Reported: the growth from the baseline to the end, the largest sample, and the
slope of a least-squares line through the samples (less sensitive to one noisy sample). Issue 10 and issue 6
ask for < 50 MB over 1,000,000 requests / events. ``--tracemalloc`` also compares Python's own allocations
at the baseline and at the end (the biggest growths, by line); it does not see chDB's memory (C++), and the
run is several times slower.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import itertools
import json
import math
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from koekje.demo.run import demo_config
from koekje.demo.site import LANGS, PAGES, create_site
from koekje.middleware import KoekjeMiddleware

TARGET_MB = 50.0
AGENTS = (  # browsers' user agents: a page view without one is a crawler's, and dropped
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/131.0.0.0 Safari/537.36",
    b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    b"Version/17.5 Mobile/15E148 Safari/604.1",
    b"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:132.0) Gecko/20100101 Firefox/132.0",
)
PATHS = tuple(page.path(lang) for page in PAGES for lang in LANGS)


MB = float(1 << 20)


def rss_mb() -> float:
    """The resident set now, in MB (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmRSS in /proc/self/status: this benchmark needs Linux")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        function = ctypes.CDLL(None).mallinfo2  # glibc 2.33 and later
    except AttributeError:
        return None
    function.restype = _MallInfo2
    return function


MALLINFO2 = _mallinfo2()
_JEMALLOC = re.compile(r"^Allocated: (\d+), active: \d+, metadata: \d+.*?, resident: (\d+),", re.M)


@dataclass(frozen=True)
class Sample:
    """RSS and what is known of where it is: chDB's own allocator (jemalloc: allocated, and resident with
    the pages it keeps for reuse), the C library's heap (Python's objects over 512 bytes, and the extensions';
    in use and free), Python's blocks (its small objects, counted), tracemalloc's total when it runs."""

    requests: int  # after the warm-up
    rss: float
    chdb_allocated: float = math.nan
    chdb_resident: float = math.nan
    heap_used: float = math.nan
    heap_free: float = math.nan
    python_blocks: int = 0
    traced: float = math.nan


def sample(requests: int, store: Any) -> Sample:
    """Blocking (it asks the store): call it from a thread."""
    rss = rss_mb()
    [(stats,)] = store.query("SELECT stats FROM system.jemalloc_stats")
    chdb = _JEMALLOC.search(stats)
    heap = MALLINFO2() if MALLINFO2 is not None else None
    return Sample(
        requests,
        rss,
        int(chdb.group(1)) / MB if chdb else math.nan,
        int(chdb.group(2)) / MB if chdb else math.nan,
        (heap.uordblks + heap.hblkhd) / MB if heap else math.nan,
        heap.fordblks / MB if heap else math.nan,
        sys.getallocatedblocks(),
        tracemalloc.get_traced_memory()[0] / MB if tracemalloc.is_tracing() else math.nan,
    )


@dataclass
class Visitor:
    """A browser: its address, user agent, language and cookie jar."""

    number: int
    cookies: dict[str, str] = field(default_factory=dict)
    pages: int = 0  # viewed so far

    @property
    def address(self) -> str:
        # A network of its own (/24, and spread over the /16s): each network's decision budget is untouched.
        n = self.number
        return f"10.{n % 256}.{n // 256 % 256}.{n // 65536 % 200 + 1}"

    def cookie_header(self) -> bytes:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items()).encode("latin-1")

    def keep(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Keep the cookies a response set (and forget the ones it removed), as a browser does."""
        for name, value in headers:
            if name != b"set-cookie":
                continue
            first, _, attributes = value.decode("latin-1").partition(";")
            cookie, _, content = first.strip().partition("=")
            if content and "max-age=0" not in attributes.lower():
                self.cookies[cookie] = content
            else:
                self.cookies.pop(cookie, None)


def scope(visitor: Visitor, method: str, path: str, query: bytes, extra: list[tuple[bytes, bytes]]) -> Any:
    agent = AGENTS[visitor.number % len(AGENTS)]
    language = b"en-GB,en;q=0.8" if visitor.number % 3 == 0 else b"nl-NL,nl;q=0.9"
    headers = [(b"host", b"www.tandwerk.test"), (b"user-agent", agent), (b"accept-language", language)]
    if visitor.cookies:
        headers.append((b"cookie", visitor.cookie_header()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers + extra,
        "client": (visitor.address, 50000 + visitor.number % 10000),
        "server": ("www.tandwerk.test", 80),
    }


async def call(app: Any, request: Any, body: bytes = b"") -> tuple[int, list[tuple[bytes, bytes]]]:
    """One request through the app; its status and response headers (the body is read and dropped)."""
    start: MutableMapping[str, Any] = {}
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)

    await app(request, receive, send)
    return start["status"], list(start.get("headers", ()))


async def consent(app: Any, visitor: Visitor) -> None:
    """The visitor allows statistics and personalization through the banner's endpoint."""
    body = json.dumps({"categories": ["analytics", "personalization"]}).encode()
    extra = [(b"content-type", b"application/json"), (b"origin", b"http://www.tandwerk.test")]
    status, headers = await call(app, scope(visitor, "POST", "/_koekje/consent", b"", extra), body)
    if status != 200:
        raise SystemExit(f"the consent of visitor {visitor.number} was answered {status}")
    visitor.keep(headers)


class Visitors:
    """New consented visitors, made a batch at a time (decisions wait for their proof to be durable: many at
    once share the ledger's writes, as on a busy site)."""

    def __init__(self, app: Any, batch: int) -> None:
        self._app = app
        self._batch = batch
        self._numbers = itertools.count()
        self._ready: list[Visitor] = []
        self.made = 0

    async def next(self) -> Visitor:
        if not self._ready:
            fresh = [Visitor(next(self._numbers)) for _ in range(self._batch)]
            await asyncio.gather(*(consent(self._app, visitor) for visitor in fresh))
            self._ready = fresh[::-1]
            self.made += len(fresh)
        return self._ready.pop()


def page_of(visitor: Visitor) -> tuple[str, bytes, list[tuple[bytes, bytes]]]:
    """The next page this visitor views: a path of the demo, and for the first one where they came from."""
    n = visitor.number
    path = PATHS[(n + visitor.pages * 7) % len(PATHS)]
    if visitor.pages:
        return path, b"", [(b"referer", f"http://www.tandwerk.test{PATHS[n % len(PATHS)]}".encode())]
    if n % 3 == 0:
        return path, f"utm_source=newsletter&utm_medium=email&utm_campaign=c{n % 40}".encode(), []
    return path, b"", [(b"referer", b"https://www.google.nl/")]


@dataclass
class Measured:
    samples: list[Sample] = field(default_factory=list)  # the first at the baseline, the last at the end
    seconds: float = 0.0
    failed: int = 0
    visitors: int = 0
    traced: tracemalloc.Snapshot | None = None  # Python's allocations at the baseline (--tracemalloc)


async def run(app: Any, args: argparse.Namespace) -> Measured:
    runtime, warmup, active = app.runtime, args.warmup, args.active
    visitors = Visitors(app, batch=max(active, 50))
    browsing = [await visitors.next() for _ in range(active)]
    every = max(args.requests // args.samples, 1)
    measured = Measured()
    started = time.perf_counter()
    for index in range(warmup + args.requests):
        if index == warmup:
            measured.samples.append(await settled(0, runtime))
            if args.tracemalloc:
                measured.traced = tracemalloc.take_snapshot()
        elif index > warmup and (index - warmup) % every == 0:
            measured.samples.append(await asyncio.to_thread(sample, index - warmup, runtime.store))
        slot = index % active
        visitor = browsing[slot]
        path, query, extra = page_of(visitor)
        status, headers = await call(app, scope(visitor, "GET", path, query, extra))
        measured.failed += status != 200
        visitor.keep(headers)
        visitor.pages += 1
        if visitor.pages >= args.pages_per_visitor:
            browsing[slot] = await visitors.next()
    measured.seconds = time.perf_counter() - started
    measured.visitors = visitors.made
    measured.samples.append(await settled(args.requests, runtime))
    return measured


async def settled(requests: int, runtime: Any) -> Sample:
    """A sample once everything recorded so far is in the store (queues empty, spool loaded), Python's
    garbage is collected and chDB's allocator has given back the free pages it keeps for reuse (as it does
    by itself after 5 s: ``dirty_decay_ms``): the same state at the baseline and at the end."""
    if not await asyncio.to_thread(runtime.flush, 600.0):
        raise SystemExit("what was recorded did not reach the store within 10 minutes")
    gc.collect()
    await asyncio.to_thread(runtime.store.command, "SYSTEM JEMALLOC PURGE")
    return await asyncio.to_thread(sample, requests, runtime.store)


def slope_per_100k(samples: list[Sample]) -> float:
    if len(samples) < 2:
        return 0.0
    return statistics.linear_regression([s.requests for s in samples], [s.rss for s in samples]).slope * 1e5


def table(samples: list[Sample]) -> Iterator[str]:
    yield (
        "  requests      RSS   chDB: allocated  resident   C heap: in use    free   Python blocks"
        + ("  traced" if not math.isnan(samples[0].traced) else "")
    )
    for s in samples:
        traced = f"  {s.traced:6.1f}" if not math.isnan(s.traced) else ""
        yield (
            f"  {s.requests:>8,} {s.rss:8.1f}   {s.chdb_allocated:15.1f} {s.chdb_resident:9.1f}   "
            f"{s.heap_used:14.1f} {s.heap_free:7.1f}   {s.python_blocks:13,}{traced}"
        )


def top_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int = 15) -> Iterator[str]:
    for stat in after.compare_to(before, "lineno")[:n]:
        frame = stat.traceback[0]
        where = f"{frame.filename}:{frame.lineno}"
        yield f"  {stat.size_diff / 1024:+10.0f} KiB {stat.count_diff:+9d} blocks  {where}"


async def main(args: argparse.Namespace) -> int:
    config = demo_config(Path(tempfile.mkdtemp(prefix="koekje-memory-")))
    app = KoekjeMiddleware(create_site(), config)
    runtime = app.runtime
    await runtime.ensure_started()
    if args.tracemalloc:
        tracemalloc.start()
    measured = await run(app, args)
    after = tracemalloc.take_snapshot() if args.tracemalloc else None
    store = runtime.store
    [(stored,)] = await asyncio.to_thread(store.query, f"SELECT count() FROM {store.table('page_views')}")
    [(decisions,)] = await asyncio.to_thread(
        store.query, f"SELECT count() FROM {store.table('consent_ledger')}"
    )
    dropped = runtime.counters()["dropped"]
    await runtime.stop()

    total = args.warmup + args.requests
    first, last = measured.samples[0], measured.samples[-1]
    print(
        f"{args.requests:,} consented page views of the demo site after a warm-up of {args.warmup:,}, in "
        f"process ({total / measured.seconds:,.0f}/s, {measured.seconds:.0f} s), {args.active} visitors at a "
        f"time, {args.pages_per_visitor} pages each"
    )
    print(
        f"  visitors who consented: {measured.visitors:,} (ledger rows: {decisions:,}); "
        f"page views stored: {stored:,}"
    )
    print(
        "  memory (MB) after the warm-up, along the way, and at the end (at both ends: queues empty, chDB's "
        "free pages purged)"
    )
    for line in table(measured.samples):
        print(line)
    peak = max(s.rss for s in measured.samples)
    print(
        f"  RSS grew {last.rss - first.rss:+.1f} MB over {args.requests:,} requests (largest sample "
        f"{peak - first.rss:+.1f} MB; slope {slope_per_100k(measured.samples):+.2f} MB per 100k); "
        f"target < {TARGET_MB:.0f} MB per 1,000,000"
    )
    print(
        f"  of which chDB's allocator: allocated {last.chdb_allocated - first.chdb_allocated:+.1f} MB, "
        f"resident {last.chdb_resident - first.chdb_resident:+.1f} MB; the C heap in use "
        f"{last.heap_used - first.heap_used:+.1f} MB, free in it {last.heap_free - first.heap_free:+.1f} MB; "
        f"Python's blocks {last.python_blocks - first.python_blocks:+,}"
    )
    if measured.traced is not None and after is not None:
        print("  Python's allocations, end vs warm-up, biggest growths (tracemalloc):")
        for line in top_growth(measured.traced, after):
            print(line)
    problems = []
    if stored != total:
        problems.append(f"{stored} page views stored for {total} requests (dropped: {dropped})")
    if decisions != measured.visitors:
        problems.append(f"{decisions} ledger rows for {measured.visitors} decisions")
    if measured.failed:
        problems.append(f"{measured.failed} requests not answered 200")
    for problem in problems:
        print(f"  FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1_000_000, help="page views measured")
    parser.add_argument("--warmup", type=int, default=100_000, help="requests before the baseline")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--pages-per-visitor", type=int, default=20)
    parser.add_argument("--active", type=int, default=200, help="visitors browsing at a time")
    parser.add_argument("--tracemalloc", action="store_true", help="also: where Python's allocations grew")
    parser.add_argument("--smoke", action="store_true", help="2000 requests: that it runs, not figures")
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.requests, arguments.warmup, arguments.samples, arguments.active = 2000, 1000, 4, 50
    if arguments.warmup < 0 or arguments.requests < 1 or arguments.active < 1:
        parser.error("--requests and --active must be 1 or more, --warmup 0 or more")
    sys.exit(asyncio.run(main(arguments)))
