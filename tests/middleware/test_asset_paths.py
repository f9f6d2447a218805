"""site.asset_paths: files the site says are never pages and set no cookies go past koekje untouched."""

import itertools
from collections.abc import Callable
from pathlib import Path

import anyio
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient
from starlette.types import Message
from support import FakeClock, consent, page_views, runtime_of

from koekje.analytics.drops import Drop
from koekje.middleware import Config, KoekjeMiddleware
from koekje.middleware.config import SiteSection

MakeClient = Callable[..., TestClient]
PAGE = "<!doctype html><html><head><title>a</title></head><body>file</body></html>"


async def _page(request: Request) -> Response:
    return HTMLResponse(PAGE)


def _site(files: Path) -> Starlette:
    (files / "embed.html").write_text(PAGE)
    (files / "site.css").write_text("body { margin: 0 }\n")
    return Starlette(routes=[Mount("/static", StaticFiles(directory=files)), Route("/{path:path}", _page)])


def _with_assets(make_config: Callable[..., Config], *paths: str) -> Config:
    config = make_config()
    return msgspec.structs.replace(config, site=msgspec.structs.replace(config.site, asset_paths=paths))


def test_asset_paths_go_past_koekje_untouched(
    make_client: MakeClient, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    client = make_client(_with_assets(make_config, "/static"), app=_site(tmp_path))
    consent(client, "analytics")
    # The retired visitor-id cookie is removed by any response koekje handles, but not by an asset's.
    client.cookies.set("koekje_vid", "A" * 22, domain="shop.test")
    embed = client.get("/static/embed.html")
    assert embed.text == PAGE  # no banner, no tags: byte for byte the file
    assert "set-cookie" not in embed.headers and "cache-control" not in embed.headers
    assert client.get("/static/site.css").text == "body { margin: 0 }\n"
    assert page_views(client) == []  # an HTML file there is no page view either
    counted = runtime_of(client).capture.counts()
    assert counted[Drop.NOT_A_PAGE] == 0 and counted[Drop.NO_CONSENT] == 0  # not even looked at
    # The same page outside the asset paths: handled as ever (recorded, the old cookie removed).
    page = client.get("/staticky/embed.html")  # (a segment boundary: not under /static)
    assert "koekje_vid=" in page.headers["set-cookie"] and page.text != PAGE
    assert [view["path"] for view in page_views(client)] == ["/staticky/embed.html"]


@pytest.mark.parametrize("path", ["/static/../account", "/static/./x/../../account", "/static//account"])
def test_a_path_that_only_starts_under_an_asset_path_is_handled(
    make_client: MakeClient, make_config: Callable[..., Config], tmp_path: Path, path: str
) -> None:
    # An app that resolves dot segments or empty ones itself would serve another page: koekje handles it.
    client = make_client(_with_assets(make_config, "/static"), app=_site(tmp_path))
    assert _handled(client, path)


def test_only_what_stays_under_an_asset_path_goes_by(
    make_client: MakeClient, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    # Every path of up to four segments from names, dots and nothing, as a server may pass it on (all of
    # them, 1,554: cheaper here than drawing some). Bypassed only when it is under /static and every segment
    # is a plain name (the last may be empty: the folder itself): nothing to resolve out of the asset path.
    client = make_client(_with_assets(make_config, "/static"), app=_site(tmp_path))
    names = ["static", "a.css", ".", "..", "", ".well-known"]
    for length in range(1, 5):
        for segments in itertools.product(names, repeat=length):
            path = "/" + "/".join(segments)
            *inner, last = segments
            plain = all(s and not s.startswith(".") for s in inner) and not last.startswith(".")
            stays = length >= 2 and segments[0] == "static" and plain
            assert _handled(client, path) is not stays, path


def _handled(client: TestClient, path: str) -> bool:
    """Whether koekje handled a request for ``path`` (sent as a server passes it on, unnormalised: an HTTP
    client would resolve the dots first): it removes the retired visitor cookie on every response it sees,
    and on none of an asset path's."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"shop.test"), (b"cookie", b"koekje_vid=" + b"A" * 22)],
        "client": ("203.0.113.7", 1),
        "scheme": "http",
        "http_version": "1.1",
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    anyio.run(client.app, scope, receive, send)
    headers = sent[0]["headers"]
    return any(name == b"set-cookie" and value.startswith(b"koekje_vid=") for name, value in headers)


def test_a_banner_goes_into_every_page_without_asset_paths(
    make_client: MakeClient, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    # The default: koekje sees every response, files included.
    client = make_client(make_config(), app=_site(tmp_path))
    assert "banner.js" in client.get("/static/embed.html").text


def test_asset_paths_under_a_root_path(
    make_config: Callable[..., Config], clock: FakeClock, tmp_path: Path
) -> None:
    # Mounted under /shop by a proxy or an outer app: the asset paths are the app's own.
    app = KoekjeMiddleware(_site(tmp_path), _with_assets(make_config, "/static/"), clock=clock)
    with TestClient(app, base_url="http://shop.test", root_path="/shop") as client:
        assert client.get("/shop/static/embed.html").text == PAGE
        assert "banner.js" in client.get("/shop/embed.html").text


@pytest.mark.parametrize(
    "path", ["/", "static", "/static/../x", "/_koekje", "/_koekje/banner.js", "/a b", "/a%2Fb", "/a?b"]
)
def test_asset_paths_that_would_hide_a_page_or_koekje_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match=r"site\.asset_paths"):
        SiteSection(asset_paths=(path,))


def test_a_prefix_inside_an_asset_path_is_refused() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        SiteSection(prefix="/static/_koekje", asset_paths=("/static",))
    assert SiteSection(asset_paths=("/static", "/media/")).asset_paths == ("/static", "/media/")
