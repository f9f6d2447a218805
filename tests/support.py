"""Helpers shared by the tests (importable as ``support``: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import dataclasses
import gzip
import os
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from httpx2 import Response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route
from starlette.testclient import TestClient

SECRET = "test-secret-key-0123456789abcdefghijklmnop"
CLIENT_IP = "203.0.113.77"
SERVER_ENV = "KOEKJE_TEST_CLICKHOUSE_URL"
# With SERVER_ENV pointing at one of its replicas: the name of a cluster (one shard, replicas, Keeper and the
# {shard} and {replica} macros configured), so the store tests also run on a replicated database.
CLUSTER_ENV = "KOEKJE_TEST_CLICKHOUSE_CLUSTER"
TOPICS = {"implantologie": ("/implantologie",), "cursussen": ("/cursussen",)}


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class ShiftedClock:
    """Real time, moved ahead when told to: for a live site whose day a test wants to be over."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def server_dsn() -> str | None:
    return os.environ.get(SERVER_ENV) or None


def cluster_name() -> str | None:
    return os.environ.get(CLUSTER_ENV) or None


async def _page(request: Request) -> StarletteResponse:
    if request.query_params.get("label"):
        request.state.koekje_topics = request.query_params.getlist("label")
    koekje = request.scope["koekje"]
    body = (
        f"<!doctype html><html><head><title>t</title></head><body>consent={koekje.consent is not None}</body>"
    )
    return HTMLResponse(body)


async def _stream(request: Request) -> StarletteResponse:
    async def parts() -> Any:
        yield b"<!doctype html><html><he"
        yield b"ad><title>s</title></HEAD><body>"
        yield b"streamed</body></html>"

    return StreamingResponse(parts(), media_type="text/html")


async def _json(request: Request) -> StarletteResponse:
    return JSONResponse({"html": "</head>"})


async def _cookies(request: Request) -> StarletteResponse:
    """A page that sets the raw Set-Cookie headers named in ``?set=`` (as an app or its framework would)."""
    response = HTMLResponse("<!doctype html><html><head><title>c</title></head><body>cookies</body></html>")
    for header in request.query_params.getlist("set"):
        response.raw_headers.append((b"set-cookie", header.encode("latin-1")))
    return response


async def _gzipped(request: Request) -> StarletteResponse:
    """A page the app compressed itself (koekje cannot put its banner in: it must leave it whole)."""
    page = b"<!doctype html><html><head><title>z</title></head><body>zipped</body></html>"
    return StarletteResponse(
        gzip.compress(page), media_type="text/html", headers={"content-encoding": "gzip"}
    )


async def _file(request: Request) -> StarletteResponse:
    """An HTML file, served with byte ranges (a 206 for a Range request)."""
    return FileResponse(Path(__file__).parent / "files" / "page.html")


async def _missing(request: Request) -> StarletteResponse:
    return HTMLResponse("<html><head></head><body>gone</body></html>", status_code=404)


def site() -> Starlette:
    """A small site: HTML pages on any path, a streamed page, JSON, a 404 page."""
    return Starlette(
        routes=[
            Route("/stream", _stream),
            Route("/api", _json),
            Route("/missing", _missing),
            Route("/cookies", _cookies),
            Route("/gzipped", _gzipped),
            Route("/file.html", _file),
            Route("/{path:path}", _page, methods=["GET", "HEAD", "POST"]),
        ]
    )


def demo_config(base: Any) -> Any:
    """``base`` (a test Config) with the demo's site, consent, banner and topics from its koekje.toml."""
    import msgspec

    from koekje.middleware import load_config

    with as_file(files("koekje.demo").joinpath("koekje.toml")) as path:
        demo = load_config(path, {"KOEKJE_SECRET_KEY": SECRET})
    analytics = msgspec.structs.replace(
        base.analytics, topics=demo.analytics.topics, exclude_paths=demo.analytics.exclude_paths
    )
    return msgspec.structs.replace(
        base, site=demo.site, consent=demo.consent, banner=demo.banner, analytics=analytics
    )


def runtime_of(client: TestClient) -> Any:
    return client.app.runtime  # type: ignore[attr-defined]


def consent(client: TestClient, *categories: str, services: tuple[str, ...] = ()) -> Response:
    response = client.post(
        "/_koekje/consent", json={"categories": list(categories), "services": list(services)}
    )
    assert response.status_code == 200, response.text
    return response


PAGE_VIEW_COLUMNS = ("ts", "site", "visitor_id", "path", "topics", "referrer_host", "country", "ip_prefix")
LEDGER_COLUMNS = (
    "consent_id",
    "previous_id",
    "visitor_id",
    "categories",
    "services",
    "policy_revision",
    "lang",
    "method",
    "country",
    "ip_prefix",
    "gpc",
)


def stored(runtime: Any, table: str, columns: tuple[str, ...], order: str) -> list[dict[str, Any]]:
    store = runtime.store
    rows = store.query(f"SELECT {', '.join(columns)} FROM {store.table(table)} ORDER BY {order}")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def page_views(client: TestClient | Any) -> list[dict[str, Any]]:
    """Everything in page_views, once everything recorded so far is loaded."""
    runtime = runtime_of(client) if isinstance(client, TestClient) else client
    assert runtime.flush(timeout=30)
    return stored(runtime, "page_views", PAGE_VIEW_COLUMNS, "ts, path")


def ledger(client: TestClient | Any) -> list[dict[str, Any]]:
    """Every ledger row, once everything decided so far is loaded."""
    runtime = runtime_of(client) if isinstance(client, TestClient) else client
    assert runtime.flush(timeout=30)
    return stored(runtime, "consent_ledger", LEDGER_COLUMNS, "ts, seq")


def set_cookie_names(response: Response) -> list[str]:
    return [header.partition("=")[0] for header in response.headers.get_list("set-cookie")]


def cookie_from(response: Response, name: str) -> str:
    """The value of a cookie a response set."""
    [value] = [
        h.split(";")[0].partition("=")[2]
        for h in response.headers.get_list("set-cookie")
        if h.startswith(name + "=")
    ]
    return value


class _Tables(HTMLParser):
    """The cells of every ``<table data-table=NAME>`` in a page, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        name = dict(attrs).get("data-table")
        if tag == "table" and name:
            self._table = self.tables.setdefault(name, [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table is not None and self._cell is not None:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_table(html: str, name: str) -> list[list[str]]:
    """The rows (header first) of the dashboard table ``name`` in ``html``; [] when the page has none."""
    parser = _Tables()
    parser.feed(html)
    return parser.tables.get(name, [])


def audit_report(**changes: Any) -> Any:
    """A `koekje audit` report written by hand: the site, a banner and three visitors, one undeclared cookie
    (``mystery``, set by a script without consent) and a declared one (``_ga``, after accepting)."""
    from koekje.middleware.audit import BannerCheck, Cookie, Finding, Report, Request, StorageItem, Visitor
    from koekje.middleware.audit.evidence import PageLoad, Screenshot

    site = "https://www.example.nl/"
    seen = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    t = seen.timestamp()
    mystery = Cookie(
        "mystery",
        "www.example.nl",
        "/",
        t + 86400,
        False,
        False,
        "Lax",
        site,
        t,
        ("script https://cdn.tracker.example/t.js",),
    )
    ga = Cookie(
        "_ga",
        ".example.nl",
        "/",
        t + 395 * 86400,
        False,
        True,
        "Lax",
        site + "b",
        t,
        ("script https://www.example.nl/stats.js",),
    )
    pages = (PageLoad(site, 200), PageLoad(site + "b", 200))
    visitors = (
        Visitor(
            "no choice",
            "none",
            ("necessary",),
            pages,
            (mystery,),
            (StorageItem("localStorage", "https://www.example.nl", "seen_intro", site),),
            (Request("cdn.tracker.example", "script", "https://cdn.tracker.example/t.js", site),),
        ),
        Visitor("rejected all", "reject", ("necessary",), pages),
        Visitor("accepted all", "accept", ("necessary", "analytics", "marketing"), pages, (mystery, ga)),
    )
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    report = Report(
        site=site,
        started=seen,
        finished=seen + timedelta(seconds=12),
        koekje_version="0.2.0",
        browser="Chromium 156.0.7485.3",
        lang="nl",
        declaration="/srv/site/koekje.toml",
        pages=(site, site + "b"),
        banner=BannerCheck(
            True,
            True,
            (120, 40),
            (120, 40),
            (),
            ("analytics", "marketing"),
            (Screenshot("First layer", png), Screenshot("Second layer", png)),
        ),
        visitors=visitors,
        findings=(
            Finding(
                "error",
                "undeclared-cookie",
                "cookie mystery is not declared",
                page=site,
                evidence=("set by script https://cdn.tracker.example/t.js",),
            ),
            Finding("warning", "storage-without-consent", "localStorage key 'seen_intro'", "no choice", site),
        ),
        declared={"mystery": "", "_ga": "analytics, 13 months"},
    )
    return dataclasses.replace(report, **changes)


def declared(**options: object) -> Any:
    """Services and cookies as a site would declare them (a ConsentSection)."""
    from koekje.middleware.config import ConsentSection, CookieSection, ServiceSection

    return ConsentSection(
        services={
            "youtube": ServiceSection(category="marketing", provider="Google"),
            "matomo": ServiceSection(category="analytics"),
        },
        cookies=(
            CookieSection(name="_fbp", category="marketing", duration="3 months"),
            CookieSection(name="_ga_*", category="analytics", duration="13 months"),
            CookieSection(name="YSC", service="youtube", duration="session", party="third"),
            CookieSection(name="_pk_id.*", service="matomo", duration="13 months"),
            CookieSection(name="sessionid", category="necessary", duration="2 weeks"),
        ),
        **options,  # type: ignore[arg-type]
    )
