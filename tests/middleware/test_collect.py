"""``POST collect``: the landing page and single-page-app views the server could not see, and engagement,
through the same steps as a served page; same-origin, bounded, consent required, bad input counted."""

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient
from support import FakeClock, consent, runtime_of, stored

from koekje.analytics.drops import Drop
from koekje.middleware import Config
from koekje.middleware.config import AnalyticsSection

MakeClient = Callable[..., TestClient]
COLUMNS = ("path", "topics", "referrer_host", "utm_source", "entry", "visit_start", "device")
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def collect(client: TestClient, body: Any, **headers: str) -> Any:
    return client.post(
        "/_koekje/collect",
        json=body,
        headers={"sec-fetch-site": "same-origin", "user-agent": BROWSER, **headers},
    )


def views(client: TestClient) -> list[dict[str, Any]]:
    runtime = runtime_of(client)
    assert runtime.flush(timeout=30)
    return stored(runtime, "page_views", COLUMNS, "ts, path")


def test_the_landing_page_is_recorded_once_consent_is_given(
    make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client()
    client.get("/implantologie?utm_source=nieuwsbrief", headers={"user-agent": BROWSER})  # not recorded
    consent(client, "analytics")
    beacon = {
        "t": "pageview",
        "path": "/implantologie?utm_source=nieuwsbrief&email=anna%40example.nl",
        "referrer": "https://www.google.nl/search?q=implantaat",
    }
    response = collect(client, beacon)
    assert response.status_code == 204
    assert any(h.startswith("koekje_visit=") for h in response.headers.get_list("set-cookie"))
    clock.advance(seconds=20)
    client.get("/cursussen", headers={"user-agent": BROWSER})  # the next page continues that visit
    rows = views(client)
    assert [(r["path"], r["referrer_host"], r["utm_source"], r["entry"]) for r in rows] == [
        ("/implantologie", "www.google.nl", "nieuwsbrief", True),
        ("/cursussen", "", "", False),
    ]
    assert rows[0]["visit_start"] == rows[1]["visit_start"]
    assert rows[0]["topics"] == ["implantologie"] and rows[0]["device"] == "desktop"


def test_single_page_views_and_engagement(make_client: MakeClient, clock: FakeClock) -> None:
    client = make_client()
    consent(client, "analytics")
    client.get("/", headers={"user-agent": BROWSER})
    events = [
        {"t": "engagement", "path": "/", "visible_ms": 42_000, "scroll": 80},
        {"t": "pageview", "path": "/cursussen/x%20y"},
    ]
    assert collect(client, events).status_code == 204
    assert [r["path"] for r in views(client)] == ["/", "/cursussen/x y"]  # decoded, as a server sees it
    [engaged] = stored(
        runtime_of(client), "engagement", ("path", "visible_ms", "scroll", "visit_start"), "ts"
    )
    assert (engaged["path"], engaged["visible_ms"], engaged["scroll"]) == ("/", 42_000, 80)
    assert engaged["visit_start"] == views(client)[0]["visit_start"]


def test_what_a_crawler_reports_is_not_stored(make_client: MakeClient) -> None:
    """Found by a helper: a headless browser's page views were left out as a crawler's, and its
    engagement stored. Both are dropped now, counted; the user agent is stored with neither."""
    client = make_client()
    consent(client, "analytics")
    headless = BROWSER.replace("Chrome/", "HeadlessChrome/")
    engaged = {"t": "engagement", "path": "/", "visible_ms": 42_000, "scroll": 80}
    events = [{"t": "pageview", "path": "/cursussen"}, engaged]
    assert collect(client, events, **{"user-agent": headless}).status_code == 204
    assert collect(client, engaged).status_code == 204  # a browser's
    assert views(client) == []
    [row] = stored(runtime_of(client), "engagement", ("path", "visible_ms"), "ts")
    assert row == {"path": "/", "visible_ms": 42_000}
    assert runtime_of(client).counters()["dropped"][Drop.BOT] == 2


def test_nothing_without_consent(make_client: MakeClient) -> None:
    client = make_client()
    beacon = [{"t": "pageview", "path": "/"}, {"t": "engagement", "path": "/", "visible_ms": 1, "scroll": 1}]
    response = collect(client, beacon)
    assert response.status_code == 204 and "set-cookie" not in response.headers
    assert views(client) == []
    dropped = runtime_of(client).counters()["dropped"]
    assert dropped[Drop.NO_CONSENT] == 2


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{", 400),
        (b'{"t": "pageview"}', 400),  # no path
        (b'{"t": "pageview", "path": "/", "extra": 1}', 400),
        (b'{"t": "purchase", "path": "/"}', 400),
        (b'{"t": "engagement", "path": "/", "visible_ms": -1, "scroll": 0}', 400),
        (b'{"t": "engagement", "path": "/", "visible_ms": 1, "scroll": 101}', 400),
        (b"[]", 400),
        (b'{"t": "pageview", "path": "/a\xff\xfe"}', 400),  # not UTF-8 (found by trying: a 500)
        (b"[" + b'{"t": "pageview", "path": "/"},' * 10 + b'{"t": "pageview", "path": "/"}]', 400),
        (b'{"t": "pageview", "path": "/' + b"a" * 9000 + b'"}', 413),
    ],
)
def test_what_the_banner_does_not_send_is_refused_and_counted(
    make_client: MakeClient, body: bytes, status: int
) -> None:
    client = make_client()
    consent(client, "analytics")
    response = client.post(
        "/_koekje/collect",
        content=body,
        headers={"content-type": "text/plain;charset=UTF-8", "sec-fetch-site": "same-origin"},
    )
    assert response.status_code == status and "error" in response.json()
    assert views(client) == []
    if status == 400:
        assert runtime_of(client).collect.dropped[Drop.BAD_BEACON] == 1


def test_only_pages_of_this_site(make_client: MakeClient, make_config: Callable[..., Config]) -> None:
    analytics = AnalyticsSection(
        **{
            **{f: getattr(make_config().analytics, f) for f in AnalyticsSection.__struct_fields__},
            "exclude_paths": ("/admin",),
        }
    )
    client = make_client(make_config(analytics=analytics))
    consent(client, "analytics")
    odd = ("/_koekje", "/./_koekje/x", "/a/../b")  # found by trying
    for path in (
        "https://evil.example/",
        "//evil.example/x",
        "relative",
        "/_koekje/consent",
        *odd,
        "/admin/x",
    ):
        assert collect(client, {"t": "pageview", "path": path}).status_code == 204
    assert views(client) == []
    runtime = runtime_of(client)
    assert runtime.collect.dropped[Drop.BAD_BEACON] == 7
    assert runtime.capture.dropped[Drop.EXCLUDED_PATH] == 1


def test_cross_site_beacons_are_refused(make_client: MakeClient) -> None:
    client = make_client()
    consent(client, "analytics")
    response = collect(client, {"t": "pageview", "path": "/"}, **{"sec-fetch-site": "cross-site"})
    assert response.status_code == 403
    form = client.post(
        "/_koekje/collect",
        content=b"t=pageview",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    assert views(client) == []


def test_a_crawler_beacon_is_dropped_like_a_crawler_page(make_client: MakeClient) -> None:
    client = make_client()
    consent(client, "analytics")
    collect(
        client,
        {"t": "pageview", "path": "/"},
        **{"user-agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"},
    )
    assert views(client) == []
    assert runtime_of(client).page_view_rows.dropped[Drop.BOT] == 1


def test_several_views_in_one_beacon_are_one_visit(make_client: MakeClient) -> None:
    client = make_client()
    consent(client, "analytics")
    collect(client, [{"t": "pageview", "path": "/a"}, {"t": "pageview", "path": "/b"}])
    rows = views(client)
    assert [(r["path"], r["entry"]) for r in rows] == [("/a", True), ("/b", False)]
    assert rows[0]["visit_start"] == rows[1]["visit_start"]
