"""What koekje costs a site over a real server: uvicorn (one worker, uvloop + httptools) driven by wrk from
a second process, on loopback.

    .venv/bin/python benchmarks/over_http.py [--rounds 5] [--seconds 5] [--connections 32] [--smoke]

Six servers run side by side, all serving `http_site.py`'s app: bare, behind koekje (embedded store, the
recorder and loader running in the same process, as on a one-worker site), the same with the stylesheet's
folder in `site.asset_paths`, the same with its write buffer writing nothing (for analysis: what the
pipeline in the site's process costs a consented page), behind Starlette's SessionMiddleware and behind a
no-op BaseHTTPMiddleware (the anchors). Each round measures every scenario
once, in turn, so the machine's noise falls on all of them alike; a scenario's ratio is its requests/s over
the bare app's on the same kind of response in the same round, and the median of those ratios is reported.

Afterwards koekje's server is stopped (the lifespan drains its queues) and its store is opened here: the
page views in it must be the consented requests wrk counted (plus at most the ones in flight when a round
ended), or the run reports a loss.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
PAGE, STATIC, API = "/implantologie", "/static/site.css", "/api/status"


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str
    path: str
    baseline: str  # the bare scenario its ratio is taken against
    consented: bool = False
    stored: bool = True  # (a consented scenario's page views are counted in koekje's store afterwards)


SCENARIOS = (
    Scenario("bare, page", "bare", PAGE, "bare, page"),
    Scenario("bare, static asset", "bare", STATIC, "bare, static asset"),
    Scenario("bare, JSON", "bare", API, "bare, JSON"),
    Scenario("koekje, no choice yet (banner in page)", "koekje", PAGE, "bare, page"),
    Scenario("koekje, static asset", "koekje", STATIC, "bare, static asset"),
    Scenario("koekje, static asset in asset_paths", "koekje-assets", STATIC, "bare, static asset"),
    Scenario("koekje, JSON", "koekje", API, "bare, JSON"),
    Scenario("koekje, consented, recorded", "koekje", PAGE, "bare, page", consented=True),
    # Analysis, not a target: what the pipeline in the site's process (rows, spool, loads, the store's
    # threads, and their share of the GIL and the cores) costs the consented scenario above.
    Scenario(
        "  the same, writer writes nothing", "koekje-nosink", PAGE, "bare, page", consented=True, stored=False
    ),
    Scenario("SessionMiddleware, page", "session", PAGE, "bare, page"),
    Scenario("BaseHTTPMiddleware no-op, page", "basehttp", PAGE, "bare, page"),
)


@dataclass(frozen=True)
class Run:
    requests_per_second: float
    requests: int
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(kind: str, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "KOEKJE_BENCH_KIND": kind, "KOEKJE_BENCH_DIR": str(directory / kind)}
    command = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "--factory", "http_site:create",
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning", "--lifespan", "on",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # until it answers (bounded): a server that never comes up fails the run
        try:
            with urllib.request.urlopen(base + API, timeout=5):
                return process, base
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"the {kind} server did not start") from None
            time.sleep(0.1)


def consent_cookies(base: str) -> str:
    """Consent given through the real endpoint, then the visit cookie of a first page: what a consented
    browser in the middle of a visit sends."""
    request = urllib.request.Request(
        base + "/_koekje/consent",
        data=json.dumps({"categories": ["analytics"]}).encode(),
        headers={"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        cookies = [c.split(";")[0] for c in response.headers.get_all("set-cookie")]
    headers = {"Cookie": "; ".join(cookies), "User-Agent": USER_AGENT}
    page = urllib.request.Request(base + PAGE, headers=headers)
    with urllib.request.urlopen(page, timeout=10) as response:
        cookies += [c.split(";")[0] for c in response.headers.get_all("set-cookie") or ()]
    return "; ".join(cookies)


_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: int, connections: int, headers: list[str]) -> Run:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for header in headers:
        command += ["-H", header]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    latency = {p: float(v) * _UNITS[u] for p, v, u in _LATENCY.findall(out)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in socket_errors.groups())
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rate is None or total is None:
        raise SystemExit(f"wrk said:\n{out}")
    return Run(float(rate.group(1)), int(total.group(1)), latency["50"], latency["99"], failed)


def stored_page_views(directory: Path) -> int:
    from http_site import koekje_config

    from koekje.analytics import Store

    store = Store(koekje_config(directory / "koekje").store_settings())
    store.open()
    try:
        [(count,)] = store.query(f"SELECT count() FROM {store.table('page_views')}")
        return int(count)
    finally:
        store.close()


def main(rounds: int, seconds: int, connections: int) -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `make bench` installs it (Debian: apt-get install wrk)")
    directory = Path(tempfile.mkdtemp(prefix="koekje-http-bench-"))
    servers = {
        kind: start_server(kind, directory)
        for kind in ("bare", "koekje", "koekje-assets", "koekje-nosink", "session", "basehttp")
    }
    try:
        cookie = consent_cookies(servers["koekje"][1])
        runs: dict[str, list[Run]] = {s.name: [] for s in SCENARIOS}
        for _ in range(rounds):
            for scenario in SCENARIOS:
                headers = [f"User-Agent: {USER_AGENT}", "Accept: text/html"]
                if scenario.consented:
                    headers.append(f"Cookie: {cookie}")
                url = servers[scenario.server][1] + scenario.path
                runs[scenario.name].append(wrk(url, seconds, connections, headers))
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGINT)  # a graceful stop: koekje drains into its store
        for process, _ in servers.values():
            process.wait(timeout=120)
    report(runs, rounds, seconds, connections)
    # (+ 1: the first page of the visit, which set its cookie)
    consented = sum(r.requests for s in SCENARIOS if s.consented and s.stored for r in runs[s.name]) + 1
    stored = stored_page_views(directory)
    in_flight = connections * rounds
    verdict = "ok" if consented <= stored <= consented + in_flight else "MISMATCH"
    print(f"page views in koekje's store: {stored}; consented pages wrk counted: {consented} ({verdict})")
    shutil.rmtree(directory, ignore_errors=True)
    failed = sum(r.errors for rs in runs.values() for r in rs)
    return 0 if verdict == "ok" and failed == 0 else 1


def report(runs: dict[str, list[Run]], rounds: int, seconds: int, connections: int) -> None:
    print(f"{rounds} interleaved rounds x {seconds} s each, wrk -t1 -c{connections}, uvicorn, 1 worker")
    print(f"{'scenario':40s} {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'ratio':>6s} {'errors':>6s}")
    for scenario in SCENARIOS:
        mine, base = runs[scenario.name], runs[scenario.baseline]
        ratios = [m.requests_per_second / b.requests_per_second for m, b in zip(mine, base, strict=True)]
        rate = statistics.median(r.requests_per_second for r in mine)
        p50, p99 = statistics.median(r.p50_ms for r in mine), statistics.median(r.p99_ms for r in mine)
        errors = sum(r.errors for r in mine)
        ratio = statistics.median(ratios)
        print(f"{scenario.name:40s} {rate:8.0f} {p50:7.2f} {p99:7.2f} {ratio:6.2f} {errors:6d}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--smoke", action="store_true", help="one short round: that it runs, not figures")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.seconds = 1, 1
    sys.exit(main(args.rounds, args.seconds, args.connections))
