"""Cost of KoekjeMiddleware on the request path, in process (no server, no network): the same Starlette
HTML page called through ASGI bare and wrapped, interleaved in rounds so machine noise hits both alike.

    .venv/bin/python benchmarks/request_path.py [--rounds 7] [--requests 3000] [--where] [--smoke]

Scenarios: a visitor without consent (banner injected, nothing recorded) and a consented visitor in the
middle of a visit (a browser's user agent, the consent and visit cookies; banner injected, visit renewed,
page view built and queued; the batch thread spools and the loader loads into a temporary embedded chDB
meanwhile). ``--where`` adds the consented requests with the write buffer's sink writing nothing, to show
what the writer costs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from koekje.middleware import Config, KoekjeMiddleware
from koekje.middleware.config import AnalyticsSection

# A browser's: without a user agent a page view is a crawler's, dropped by the write buffer before the spool.
USER_AGENT = (
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/131.0.0.0 Safari/537.36"
)
PAGE = "<!doctype html><html><head><title>x</title></head><body>" + "<p>text</p>" * 200 + "</body></html>"


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE)


def scope(cookie: str) -> dict[str, Any]:
    headers = [(b"host", b"site.test"), (b"accept", b"text/html"), (b"user-agent", USER_AGENT)]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/implantologie",
        "raw_path": b"/implantologie",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("203.0.113.77", 5000),
        "server": ("site.test", 80),
    }


async def call(app: Any, cookie: str, n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    start = time.perf_counter()
    for _ in range(n):
        await app(scope(cookie), receive, send)
    return (time.perf_counter() - start) / n * 1e6


async def consent_cookies(app: KoekjeMiddleware) -> str:
    """Give consent through the real endpoint and return the cookies it set."""
    sent: list[dict[str, Any]] = []
    body = b'{"categories": ["analytics"]}'
    request = scope("") | {
        "method": "POST",
        "path": "/_koekje/consent",
        "headers": [(b"host", b"site.test"), (b"content-type", b"application/json")],
    }
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await app(request, receive, send)
    cookies = [v.decode().split(";")[0] for k, v in sent[0]["headers"] if k == b"set-cookie"]
    return "; ".join(cookies)


class NullSink:
    """A sink that writes nothing: what the write buffer's thread costs, by difference."""

    def write(self, batch: object) -> None:
        pass


async def with_visit(app: KoekjeMiddleware, cookies: str) -> str:
    """The cookies a consented browser sends on its second page: the visit cookie the first one set too."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await app(scope(cookies), receive, send)
    visit = [v.decode().split(";")[0] for k, v in sent[0]["headers"] if k == b"set-cookie"]
    return "; ".join([cookies, *visit])


def benchmark_site(**analytics: Any) -> tuple[Starlette, KoekjeMiddleware]:
    """The bare page app, and the same app behind koekje on a temporary embedded store (``analytics``:
    settings other than the defaults)."""
    site = Starlette(routes=[Route("/implantologie", page)])
    config = Config(
        secret_keys=("benchmark-secret-" + "x" * 32,),
        analytics=AnalyticsSection(
            data_dir=tempfile.mkdtemp(),
            spool_dir=tempfile.mkdtemp(),
            topics={"implantologie": ("/implantologie",)},
            **analytics,
        ),
    )
    return site, KoekjeMiddleware(site, config)


async def main(rounds: int, requests: int, where: bool) -> None:
    site, wrapped = benchmark_site(queue_size=1_000_000)
    await wrapped.runtime.ensure_started()
    consented = await with_visit(wrapped, await consent_cookies(wrapped))
    results: dict[str, list[float]] = {"bare": [], "koekje, no consent": [], "koekje, consented": []}
    recorder = wrapped.runtime.recorder
    sink = recorder._sink
    for _ in range(rounds):
        results["bare"].append(await call(site, "", requests))
        results["koekje, no consent"].append(await call(wrapped, "", requests))
        results["koekje, consented"].append(await call(wrapped, consented, requests))
        if where:  # the same consented requests, the write buffer's thread writing nothing
            await asyncio.to_thread(recorder.flush)  # (the page views above go to the store, not nowhere)
            recorder._sink = NullSink()
            results.setdefault("  ... sink writes nothing", []).append(
                await call(wrapped, consented, requests)
            )
            await asyncio.to_thread(recorder.flush)  # (these nowhere)
            recorder._sink = sink
            # (No "nothing queued" any more: the recorder is compiled, and a compiled method cannot be
            # swapped for a stand-in.)
    await asyncio.to_thread(wrapped.runtime.flush)
    store = wrapped.runtime.store
    [(written,)] = await asyncio.to_thread(store.query, f"SELECT count() FROM {store.table('page_views')}")
    await wrapped.runtime.stop()
    bare = statistics.median(results["bare"])
    print(f"{rounds} rounds x {requests} requests, median us/request (ratio to bare in the same runs)")
    for name, values in results.items():
        print(f"  {name:22s} {statistics.median(values):8.1f} us   x{statistics.median(values) / bare:5.2f}")
    # Issue 6's measure: a consented, recorded request against a no-consent one, taken round by round.
    same_round = [
        c / n for c, n in zip(results["koekje, consented"], results["koekje, no consent"], strict=True)
    ]
    print(f"  consented / no consent, median of the same-round ratios: x{statistics.median(same_round):.2f}")
    recorded = rounds * requests + 1  # (+ the first page of the visit)
    print(f"  page views in the store afterwards: {written} of {recorded} consented requests recorded")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--where", action="store_true", help="also: consented without the writer's work")
    parser.add_argument("--smoke", action="store_true", help="1 round of 200: that it runs, not figures")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.requests = 1, 200
    asyncio.run(main(args.rounds, args.requests, args.where))
