"""KoekjeMiddleware driven through a real client, on a real chDB store."""

import gzip
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient
from support import CLIENT_IP, FakeClock, consent, ledger, page_views, runtime_of, site

from koekje.analytics import Store
from koekje.banner import asset
from koekje.middleware import Config, KoekjeMiddleware
from koekje.middleware.capture import referrer_host
from koekje.middleware.config import BannerSection, SiteSection

MakeClient = Callable[..., TestClient]


# -- the banner tag --------------------------------------------------------------------------------------


def test_banner_tag_is_injected_before_head_end(make_client: MakeClient) -> None:
    response = make_client().get("/")
    tag = f'<script src="/_koekje/banner.js?v={asset("banner.js").version}" defer></script></head>'
    assert tag in response.text
    assert int(response.headers["content-length"]) == len(response.content)


def test_banner_tag_in_a_streamed_page_split_across_chunks(make_client: MakeClient) -> None:
    response = make_client().get("/stream")
    assert response.text.count("/_koekje/banner.js") == 1
    assert response.text.index("banner.js") < response.text.index("</HEAD>")
    assert response.text.endswith("streamed</body></html>")


def test_no_tag_in_json_or_head_requests(make_client: MakeClient) -> None:
    client = make_client()
    assert client.get("/api").json() == {"html": "</head>"}
    head = client.head("/")
    assert head.status_code == 200 and head.content == b""
    # What HEAD says of the page is what GET sends: the banner counted in.
    assert head.headers["content-length"] == str(len(client.get("/").content))


def test_head_of_a_page_served_without_its_body_says_no_wrong_length(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """A FileResponse answers HEAD with the file's length and no body: the length GET's page will have
    (with the banner) cannot be counted from that, so HEAD leaves it out (found by a helper: it said the
    file's)."""
    from starlette.responses import FileResponse

    page = tmp_path / "page.html"
    page.write_text("<!doctype html><html><head><title>f</title></head><body><p>file</p></body></html>")

    async def served(request: Any) -> FileResponse:
        return FileResponse(page)

    client = make_client(app=Starlette(routes=[Route("/f", served, methods=["GET", "HEAD"])]))
    get, head = client.get("/f"), client.head("/f")
    assert b'id="koekje"' in get.content and int(get.headers["content-length"]) == len(get.content)
    assert head.status_code == 200 and head.content == b""
    assert head.headers.get("content-length") in (None, get.headers["content-length"])
    assert head.headers["vary"] == "Cookie"


def test_injection_can_be_turned_off(make_client: MakeClient, make_config: Callable[..., Config]) -> None:
    client = make_client(make_config(banner=BannerSection(inject=False)))
    assert "banner.js" not in client.get("/").text


def test_banner_assets_are_cacheable(make_client: MakeClient) -> None:
    client = make_client()
    js = asset("banner.js")
    versioned = client.get(f"/_koekje/banner.js?v={js.version}")
    assert versioned.content == js.body
    assert versioned.headers["content-type"].startswith("text/javascript")
    assert "immutable" in versioned.headers["cache-control"]
    assert "immutable" not in client.get("/_koekje/banner.js").headers["cache-control"]
    css = asset("banner.css")
    plain = {"accept-encoding": "identity", "if-none-match": f'"{css.version}"'}
    assert client.get("/_koekje/banner.css", headers=plain).status_code == 304
    assert client.get("/_koekje/nothing.js").status_code == 404


def test_banner_assets_go_out_precompressed(make_client: MakeClient) -> None:
    client = make_client()
    js = asset("banner.js")
    for accept, coding, body in (
        ("gzip, deflate, br", "br", js.encoded["br"]),
        ("gzip;q=1.0, br;q=0", "gzip", js.encoded["gzip"]),
        ("identity", None, js.body),
    ):
        response = client.get(f"/_koekje/banner.js?v={js.version}", headers={"accept-encoding": accept})
        assert (
            response.headers.get("content-encoding") == coding
            and response.headers["vary"] == "Accept-Encoding"
        )
        # (the test client decodes gzip; brotli it leaves as it came: the browser tests read it decoded)
        assert response.content == (body if coding == "br" else js.body)
        assert int(response.headers["content-length"]) == len(body)
        tag = response.headers["etag"]
        assert (
            client.get(
                "/_koekje/banner.js", headers={"accept-encoding": accept, "if-none-match": tag}
            ).status_code
            == 304
        )
    assert gzip.decompress(js.encoded["gzip"]) == js.body and len(js.encoded["br"]) < len(js.encoded["gzip"])
    tag = f'"{js.version}-gzip"'
    for condition in (f"W/{tag}", f'"other", {tag}', "*"):  # as caches and browsers may ask
        headers = {"accept-encoding": "gzip", "if-none-match": condition}
        assert client.get("/_koekje/banner.js", headers=headers).status_code == 304, condition
    assert client.get("/_koekje/banner.js", headers={"if-none-match": '"other"'}).status_code == 200


# -- config.json and consent -----------------------------------------------------------------------------


def test_config_for_a_new_visitor(make_client: MakeClient) -> None:
    body = make_client().get("/_koekje/config.json?lang=en", headers={"sec-gpc": "1"}).json()
    assert body["consent"] is None
    assert body["mode"] == "opt-in"
    assert body["region"] is None  # no GeoIP database: unknown, so the strictest rules
    assert body["gpc"] is True
    assert [c["id"] for c in body["categories"]] == ["necessary", "analytics", "personalization", "marketing"]
    assert body["categories"][0]["required"] is True
    assert body["texts"]["reject_all"] == "Reject all"
    assert body["endpoints"]["consent"] == "/_koekje/consent"


def test_config_language_from_accept_language(make_client: MakeClient) -> None:
    client = make_client()
    assert (
        client.get("/_koekje/config.json", headers={"accept-language": "en-GB,en;q=0.9"}).json()["lang"]
        == "en"
    )
    assert client.get("/_koekje/config.json", headers={"accept-language": "fr"}).json()["lang"] == "nl"


def test_accepting_analytics_records_proof_and_sets_one_signed_cookie(make_client: MakeClient) -> None:
    client = make_client()
    response = consent(client, "analytics")
    [cookie] = response.headers.get_list("set-cookie")  # the visitor id travels inside the signed cookie
    assert cookie.startswith("koekje_consent=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert response.json()["consent"]["categories"] == ["necessary", "analytics"]

    [row] = ledger(client)
    assert row["categories"] == ["analytics", "necessary"]
    assert row["consent_id"].hex == response.json()["consent"]["id"]
    assert row["visitor_id"] is not None and row["previous_id"] is None
    assert row["ip_prefix"] == "203.0.113.0"
    assert client.get("/_koekje/config.json").json()["consent"]["categories"] == ["necessary", "analytics"]


def test_rejecting_sets_only_the_consent_cookie(make_client: MakeClient) -> None:
    client = make_client()
    response = consent(client)
    assert [c.split("=")[0] for c in response.headers.get_list("set-cookie")] == ["koekje_consent"]
    [row] = ledger(client)
    assert row["categories"] == ["necessary"] and row["visitor_id"] is None


def test_a_changed_choice_links_to_the_previous_proof(make_client: MakeClient) -> None:
    client = make_client()
    first = consent(client, "analytics").json()["consent"]["id"]
    consent(client, "analytics", "marketing")
    rows = ledger(client)
    assert len(rows) == 2
    assert {row["previous_id"].hex if row["previous_id"] else None for row in rows} == {None, first}


def test_secure_cookies_over_https(make_client: MakeClient) -> None:
    client = make_client()
    client.base_url = client.base_url.copy_with(scheme="https")
    assert all("Secure" in c for c in consent(client, "analytics").headers.get_list("set-cookie"))


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        (
            {"json": {"categories": ["analytics"]}, "headers": {"origin": "https://evil.test"}},
            403,
            "cross-site",
        ),
        (
            {"json": {"categories": ["analytics"]}, "headers": {"sec-fetch-site": "cross-site"}},
            403,
            "cross-site",
        ),
        (
            {
                "content": b"categories=analytics",
                "headers": {"content-type": "text/plain"},
            },
            415,
            "application/json",
        ),
        (
            {
                "content": b'{"categories": [' + b'"x",' * 2000 + b'"y"]}',
                "headers": {"content-type": "application/json"},
            },
            413,
            "larger than",
        ),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"json": ["analytics"]}, 400, "list of categories"),
        ({"json": {"categories": ["analytics", "tracking"]}}, 400, "unknown categories ['tracking']"),
        ({"json": {"categories": [1]}}, 400, "list of names"),
    ],
)
def test_bad_consent_requests_get_a_clear_4xx_and_change_nothing(
    make_client: MakeClient, kwargs: dict[str, object], status: int, message: str
) -> None:
    client = make_client()
    response = client.post("/_koekje/consent", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert message in response.json()["error"]
    assert "set-cookie" not in response.headers
    assert ledger(client) == []


def test_same_origin_consent_is_accepted(make_client: MakeClient) -> None:
    client = make_client()
    response = client.post(
        "/_koekje/consent",
        json={"categories": []},
        headers={"origin": "http://shop.test", "sec-fetch-site": "same-origin"},
    )
    assert response.status_code == 200


def test_no_cookie_when_the_proof_cannot_be_kept(make_client: MakeClient) -> None:
    client = make_client()
    runtime_of(client).spool.max_bytes = 0  # the disk is full: the choice cannot be proven
    response = client.post("/_koekje/consent", json={"categories": ["analytics"]})
    assert response.status_code == 503
    assert "set-cookie" not in response.headers


def test_a_choice_made_while_the_store_is_down_is_proven_once_it_is_back(make_client: MakeClient) -> None:
    client = make_client()
    runtime = runtime_of(client)
    runtime.store.close()  # the store goes away: the proof waits in the spool, on disk
    assert consent(client, "analytics").status_code == 200
    client.get("/implantologie")
    assert not runtime.flush(timeout=5)  # nothing can be loaded now
    runtime.store.open()
    [row] = ledger(client)
    assert [v["visitor_id"] for v in page_views(client)] == [row["visitor_id"]]


# -- capture ---------------------------------------------------------------------------------------------


def test_consented_page_views_are_stored_with_topics(make_client: MakeClient, clock: FakeClock) -> None:
    client = make_client()
    consent(client, "analytics")
    client.get("/implantologie", headers={"referer": "https://www.google.nl/search?q=implant"})
    clock.advance(seconds=5)
    client.get("/cursussen/basis?label=implantologie&label=Not%20Valid&utm_source=mail")
    views = page_views(client)
    assert [v["path"] for v in views] == ["/implantologie", "/cursussen/basis"]
    assert views[0]["topics"] == ["implantologie"]
    assert views[1]["topics"] == ["cursussen", "implantologie"]
    assert views[0]["referrer_host"] == "www.google.nl"
    assert {v["ip_prefix"] for v in views} == {"203.0.113.0"}
    assert views[0]["visitor_id"] == views[1]["visitor_id"] == ledger(client)[0]["visitor_id"]
    assert views[0]["site"] == "default"
    assert runtime_of(client).page_views.invalid_app_topics == 1


def test_only_served_html_pages_count(make_client: MakeClient) -> None:
    client = make_client()
    consent(client, "analytics")
    client.get("/api")
    client.get("/missing")
    client.head("/x")
    client.post("/x")
    client.get("/_koekje/config.json")
    client.get("/prefetched", headers={"sec-purpose": "prefetch"})
    assert page_views(client) == []
    assert runtime_of(client).capture.dropped["prefetch"] == 1


def test_the_retired_visitor_cookie_is_removed_privately(make_client: MakeClient) -> None:
    """koekje 0.1 kept the visitor id in a cookie of its own: any that comes back is removed, and the
    response that removes it is not for shared caches."""
    client = make_client()
    consent(client, "analytics")
    client.cookies.set("koekje_vid", "A" * 22, domain="shop.test")
    response = client.get("/implantologie")
    assert (
        response.headers["set-cookie"].startswith("koekje_vid=;")
        or 'koekje_vid=""' in response.headers["set-cookie"]
    )
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert response.headers["cache-control"] == "private, no-store"
    assert "koekje_vid" not in client.cookies
    # A page that only renews the visit cookie is private, and may still be kept by the browser.
    assert client.get("/").headers["cache-control"] == "private"
    assert len(page_views(client)) == 2
    client.cookies.clear()
    assert "cache-control" not in client.get("/").headers  # pages without a cookie change are untouched


def test_endpoints_see_the_visitor(make_client: MakeClient) -> None:
    client = make_client()
    assert "consent=False" in client.get("/").text
    consent(client)
    assert "consent=True" in client.get("/").text


def test_prefix_is_configurable(make_client: MakeClient, make_config: Callable[..., Config]) -> None:
    config = make_config(site=SiteSection(prefix="/privacy-tools"))
    client = make_client(config)
    assert 'src="/privacy-tools/banner.js' in client.get("/").text
    assert client.get("/privacy-tools/config.json").json()["endpoints"]["consent"] == "/privacy-tools/consent"
    unprefixed = client.get("/_koekje/config.json")  # now an ordinary path of the app
    assert unprefixed.headers["content-type"].startswith("text/html")


def test_shutdown_drains_the_queue(make_config: Callable[..., Config], clock: FakeClock) -> None:
    config = make_config()
    # A long flush interval: only the shutdown drain can write these events.
    config = msgspec.structs.replace(
        config, analytics=msgspec.structs.replace(config.analytics, flush_interval_seconds=60.0)
    )
    app = KoekjeMiddleware(site(), config, clock=clock)
    with TestClient(app, base_url="http://shop.test", client=(CLIENT_IP, 1)) as client:
        consent(client, "analytics")
        for i in range(5):
            client.get(f"/page/{i}")
    with Store(config.store_settings()) as store:
        assert store.query(f"SELECT count() FROM {store.table('page_views')}") == [(5,)]
        store.command(f"DROP DATABASE `{config.analytics.database}` SYNC")


def test_as_starlette_middleware(make_config: Callable[..., Config], clock: FakeClock) -> None:
    config = make_config()
    middleware = [Middleware(KoekjeMiddleware, config=config, clock=clock)]
    app = Starlette(routes=site().routes, middleware=middleware)
    with TestClient(app, base_url="http://shop.test", client=(CLIENT_IP, 1)) as client:
        consent(client, "analytics")
        assert "banner.js" in client.get("/implantologie").text
        runtime = app.middleware_stack.app.runtime  # type: ignore[union-attr]
        assert [v["path"] for v in page_views(runtime)] == ["/implantologie"]
        runtime.store.command(f"DROP DATABASE `{config.analytics.database}` SYNC")


# -- responses the injection must leave intact ----------------------------------------------------------


def test_banner_url_is_right_for_pages_under_a_mount(make_client: MakeClient) -> None:
    client = make_client(app=Starlette(routes=[Mount("/blog", site())]))
    assert 'src="/_koekje/banner.js?v=' in client.get("/blog/post").text
    assert client.get("/_koekje/banner.js").status_code == 200


def test_many_tiny_chunks_get_one_tag(make_client: MakeClient) -> None:
    html = b"<html><head><style>" + b"x" * 5000 + b"</style></head><body>end</body></html>"

    async def tiny(request: object) -> StreamingResponse:
        async def chunks() -> Any:
            for i in range(len(html)):
                yield html[i : i + 1]

        return StreamingResponse(chunks(), media_type="text/html")

    client = make_client(app=Starlette(routes=[Route("/", tiny)]))
    body = client.get("/").content
    assert body.count(b"/_koekje/banner.js") == 1
    assert body.count(b'<section class="koekje"') == 1
    markup = body[body.index(b"<section") : body.index(b"</section>") + len(b"</section>")]
    tags = body[body.index(b"<link rel") : body.index(b"</head>")]
    assert body.replace(tags, b"").replace(markup, b"") == html
    assert body.index(b"<body>") + len(b"<body>") == body.index(b"<section")  # the body's first content


def test_pathsend_responses_keep_their_start(
    make_config: Callable[..., Config], clock: FakeClock, tmp_path: Path
) -> None:
    (tmp_path / "page.html").write_text("<html><head></head><body>file</body></html>")
    app = KoekjeMiddleware(
        Starlette(routes=[Mount("/", StaticFiles(directory=tmp_path))]), make_config(), clock=clock
    )
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/page.html",
        "raw_path": b"/page.html",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"shop.test")],
        "client": (CLIENT_IP, 1),
        "scheme": "http",
        "http_version": "1.1",
        "extensions": {"http.response.pathsend": {}},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    async def run() -> None:
        await app(scope, receive, send)
        await app.runtime.stop()

    anyio.run(run)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    with app.runtime.store as store:
        store.command(f"DROP DATABASE `{app.config.analytics.database}` SYNC")


def test_range_responses_are_left_alone(make_client: MakeClient, tmp_path: Path) -> None:
    page = b"<html><head></head><body>" + b"0123456789" * 10 + b"</body></html>"
    (tmp_path / "page.html").write_bytes(page)
    client = make_client(app=Starlette(routes=[Mount("/", StaticFiles(directory=tmp_path))]))
    consent(client, "analytics")
    part = client.get("/page.html", headers={"range": "bytes=20-40"})
    assert part.status_code == 206 and part.content == page[20:41]
    assert page_views(client) == []
    whole = client.get("/page.html")
    assert b"banner.js" in whole.content and len(page_views(client)) == 1


def test_a_visitor_id_planted_before_consent_counts_for_nothing(make_client: MakeClient) -> None:
    client = make_client()
    client.cookies.set("koekje_vid", "A" * 22)
    response = consent(client, "analytics")
    removed = [c for c in response.headers.get_list("set-cookie") if c.startswith("koekje_vid=")]
    assert len(removed) == 1 and "Max-Age=0" in removed[0]
    client.get("/implantologie")
    [row] = ledger(client)
    assert [v["visitor_id"] for v in page_views(client)] == [row["visitor_id"]]


def test_consent_behind_a_proxy_that_rewrites_host(make_client: MakeClient) -> None:
    client = make_client()
    headers = {"origin": "https://www.praktijk.nl", "sec-fetch-site": "same-origin", "host": "backend:8000"}
    assert client.post("/_koekje/consent", json={"categories": []}, headers=headers).status_code == 200
    headers["sec-fetch-site"] = "same-site"  # a sibling subdomain is another site for consent
    assert client.post("/_koekje/consent", json={"categories": []}, headers=headers).status_code == 403


def test_a_content_type_in_capitals_is_html_too(make_client: MakeClient) -> None:
    async def page(request: object) -> Response:
        return Response(b"<html><head></head><body>x</body></html>", headers={"content-type": " Text/HTML"})

    client = make_client(app=Starlette(routes=[Route("/", page)]))
    consent(client, "analytics")
    assert "banner.js" in client.get("/").text
    assert len(page_views(client)) == 1


@pytest.mark.parametrize(
    ("referer", "host"),
    [
        ("https://www.google.nl/search?q=x", "www.google.nl"),
        ("https://WWW.Example.COM:8443/", "www.example.com"),
        ("http://<script>alert(1)</script>/x", ""),  # found by trying: stored as "<script>alert(1)<"
        ("http://203.0.113.7/intranet", ""),  # an address may be a person's own machine
        ("http://[2001:db8::1]/", ""),
        ("http://-bad-.example/", ""),
        ("http://" + "a" * 64 + ".example/", ""),
        ("not a url", ""),
        ("", ""),
    ],
)
def test_only_host_names_are_kept_of_a_referrer(referer: str, host: str) -> None:
    assert referrer_host(referer) == host


@given(st.text(max_size=80))
def test_a_kept_referrer_host_is_always_a_plain_host_name(text: str) -> None:
    host = referrer_host("http://" + text)
    assert host == "" or re.fullmatch(r"[a-z0-9.-]{1,253}", host)
