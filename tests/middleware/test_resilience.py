"""Storage trouble never takes the site down, and never blocks a visitor from withdrawing consent."""

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from starlette.testclient import TestClient
from support import CLIENT_IP, SECRET, FakeClock, consent, cookie_from, page_views, runtime_of, site

from koekje.middleware import Config, KoekjeMiddleware

MakeClient = Callable[..., TestClient]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_site_is_served_while_the_store_is_unreachable(
    make_config: Callable[..., Config], clock: FakeClock
) -> None:
    config = make_config()
    config = msgspec.structs.replace(
        config,
        analytics=msgspec.structs.replace(
            config.analytics, dsn=f"http://default:@127.0.0.1:{_closed_port()}"
        ),
    )
    app = KoekjeMiddleware(site(), config, clock=clock)
    with TestClient(app, base_url="http://shop.test", client=(CLIENT_IP, 1)) as client:
        page = client.get("/implantologie")
        assert page.status_code == 200 and "banner.js" in page.text
        assert client.get("/_koekje/config.json").json()["consent"] is None
        # A grant's proof is durable in the spool: the visitor gets their way, nothing waits for the store.
        assert consent(client, "analytics").status_code == 200
        client.get("/implantologie")
        runtime = app.runtime
        assert not runtime.flush(timeout=10)  # spooled, not loaded
        assert [len(runtime.spool.pending(t)) > 0 for t in ("consent_ledger", "page_views")] == [True, True]
        assert runtime.engine.counts["decision_unrecorded"] == 0


def test_withdrawal_takes_effect_when_its_proof_cannot_be_kept(make_client: MakeClient) -> None:
    client = make_client()
    consent(client, "analytics")
    client.get("/implantologie")
    assert len(page_views(client)) == 1
    runtime_of(client).spool.max_bytes = 0  # the disk is full: no proof can be kept

    response = client.post("/_koekje/consent", json={"categories": []})
    assert response.status_code == 200
    withdrawn = runtime_of(client).engine.codec.loads(cookie_from(response, "koekje_consent"))
    assert withdrawn is not None and withdrawn.categories == {"necessary"} and withdrawn.visitor_id is None
    client.get("/implantologie")
    assert len(page_views(client)) == 1
    assert client.post("/_koekje/consent", json={"categories": ["analytics"]}).status_code == 503


def test_after_shutdown_requests_are_served_without_restarting(
    make_config: Callable[..., Config], clock: FakeClock
) -> None:
    config = make_config()
    app = KoekjeMiddleware(site(), config, clock=clock)
    client = TestClient(app, base_url="http://shop.test", client=(CLIENT_IP, 1))
    with client:
        consent(client, "analytics")
        client.get("/a")
    assert client.get("/b").status_code == 200  # after lifespan shutdown
    assert app.runtime.recorder.dropped["recorder_stopped"] == 1
    with app.runtime.store as store:  # the shutdown loaded what was spooled
        assert store.query(f"SELECT path FROM {store.table('page_views')}") == [("/a",)]
        assert store.query(f"SELECT count() FROM {store.table('consent_ledger')}") == [(1,)]
        store.command(f"DROP DATABASE `{config.analytics.database}` SYNC")


def test_a_spool_that_cannot_be_made_fails_the_start_clearly_and_serves_no_page_unenforced(
    make_config: Callable[..., Config], clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by trying: a spool_dir the site's user cannot create made every request a 500 with a
    traceback, and uvicorn's default lifespan mode took the failed start for an app without lifespan."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = make_config()
    config = msgspec.structs.replace(
        config, analytics=msgspec.structs.replace(config.analytics, spool_dir=str(blocker / "spool"))
    )

    async def request(app: KoekjeMiddleware, scope: dict[str, Any], *incoming: dict[str, Any]) -> list[Any]:
        sent: list[Any] = []
        messages = iter(incoming)

        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: Any) -> None:
            sent.append(message)

        with anyio.fail_after(10):
            try:
                await app(scope, receive, send)
            except Exception:  # (what the server would see raised: a lifespan that failed)
                sent.append("raised")
        return sent

    page = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": (CLIENT_IP, 1)}
    before = set(threading.enumerate())
    served = KoekjeMiddleware(site(), config, clock=clock)
    for _ in range(2):  # (the second within the retry interval: not tried again, the same answer)
        sent = anyio.run(request, served, page)
        assert sent[0]["status"] == 503 and sent[-1]["body"] == b"Service unavailable"
    assert sum("analytics.spool_dir" in r.getMessage() for r in caplog.records) == 1  # once, no traceback
    assert not any(r.exc_info for r in caplog.records)
    # Nothing was started by the failed start (a start tried again would start its threads twice).
    assert not [t.name for t in threading.enumerate() if t not in before and t.name.startswith("koekje")]

    started = KoekjeMiddleware(site(), config, clock=clock)
    sent = anyio.run(request, started, {"type": "lifespan"}, {"type": "lifespan.startup"})
    assert sent[0]["type"] == "lifespan.startup.failed" and "analytics.spool_dir" in sent[0]["message"]


MISTAKEN = "[[consent.cookies]]\nname = 'promo'\ncategory = 'marketting'\nduration = '1 day'\n"
STARLETTE_SITE = """
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from koekje.middleware import KoekjeMiddleware

async def home(request):
    return HTMLResponse("<html><head></head><body>home</body></html>")

app = Starlette(routes=[Route("/", home)])
app.add_middleware(KoekjeMiddleware, config="koekje.toml")
"""


def test_a_mistaken_configuration_stops_the_start_under_add_middleware_too(tmp_path: Path) -> None:
    """Found by a helper: with Starlette's add_middleware the middleware is built when the lifespan starts,
    and the ConfigError raised there made uvicorn take the app for one without lifespan: it started, and
    answered every request 500 with a traceback. Now the start fails, with the key named."""
    (tmp_path / "koekje.toml").write_text(MISTAKEN)
    (tmp_path / "mistaken_site.py").write_text(STARLETTE_SITE)
    command = [sys.executable, "-m", "uvicorn", "mistaken_site:app", "--host", "127.0.0.1", "--port", "0"]
    env = {**os.environ, "KOEKJE_SECRET_KEY": SECRET, "PYTHONPATH": str(tmp_path)}
    ran = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode != 0, ran.stderr
    assert "consent.cookies" in ran.stderr and "marketting" in ran.stderr, ran.stderr
    assert "Application startup failed" in ran.stderr and "Traceback" not in ran.stderr, ran.stderr


def test_without_lifespan_a_mistaken_configuration_serves_nothing_unenforced(tmp_path: Path) -> None:
    (tmp_path / "koekje.toml").write_text(MISTAKEN)
    app = KoekjeMiddleware(site(), tmp_path / "koekje.toml")  # (said in the log, not raised)
    assert app.unusable is not None and "marketting" in app.unusable
    client = TestClient(app, base_url="http://shop.test")  # (not entered: no lifespan)
    answer = client.get("/implantologie")
    assert answer.status_code == 503 and "banner" not in answer.text


def test_a_geoip_database_that_is_not_one_stops_the_start_too(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """Found by a review: only configuration mistakes were kept for the start; a geo.database that is no
    GeoIP database raised from the constructor, which under add_middleware is the 500-with-traceback case."""
    (tmp_path / "not.mmdb").write_text("not a database")
    config = make_config()
    config = msgspec.structs.replace(
        config, geo=msgspec.structs.replace(config.geo, database=str(tmp_path / "not.mmdb"))
    )
    app = KoekjeMiddleware(site(), config)
    assert app.unusable is not None and "geo.database" in app.unusable
    assert TestClient(app, base_url="http://shop.test").get("/").status_code == 503


def test_a_spool_the_store_could_not_read_fails_the_start_clearly(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """Found by a review: what the spool refuses is a ValueError (here a path the store would read as a
    pattern), which escaped the constructor: under add_middleware, every request a 500 with a traceback."""
    config = make_config()
    config = msgspec.structs.replace(
        config, analytics=msgspec.structs.replace(config.analytics, spool_dir=str(tmp_path / "{a,b}"))
    )
    answer = TestClient(KoekjeMiddleware(site(), config), base_url="http://shop.test").get("/")
    assert answer.status_code == 503
