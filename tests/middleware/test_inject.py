"""Where koekje's tags go into a page: the scanner that finds the head's end without breaking the page, and
Consent Mode's default before any script."""

import json
import re
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send
from support import consent

from koekje.middleware import Config, inject
from koekje.middleware import page as inject_page
from koekje.middleware.config import ConsentModeSection, ConsentSection
from koekje.middleware.inject import HeadScanner

MakeClient = Callable[..., TestClient]

# Places where "</head>" and "<script" may appear without being markup.
DECOYS = [
    "<!-- </head> <script> -->",
    "<script>var s = '</head><body>';</script>",
    "<style>/* </head> */ body{}</style>",
    "<template><head></head><script></script></template>",
    "<title>a </head> title</title>",
    "<textarea></head></textarea>",
    '<meta name="x" content="a > b </head>">',
    "<!DOCTYPE html>",
    "<noscript>plain</noscript>",
    "text with < and a <3 and </ b>",  # "</ " opens a bogus comment up to the next ">"
    "<!-->",  # an empty comment, as browsers end it
    "<!--->",
    "<script><!-- <script> </script> </head> --></script>",  # double-escaped: the first </script> is text
    "<noscript><link href='</head>'></noscript>",
    "<template><script>'</template></head>'</script></template>",
    "<style>/* <!-- */ </head> </style>",
]


def scan(document: bytes, pieces: int = 1) -> HeadScanner:
    scanner = HeadScanner(len(document))
    if pieces == 1:
        scanner.whole(document)  # the one-call path for a page that came in one piece
        return scanner
    size = max(1, len(document) // pieces)
    for end in range(size, len(document) + size, size):
        if scanner.feed(document[: min(end, len(document))], final=end >= len(document)):
            break
    return scanner


@settings(max_examples=400)
@given(
    before=st.lists(st.sampled_from(DECOYS), max_size=6),
    after=st.lists(st.sampled_from(DECOYS), max_size=3),
    closing=st.sampled_from(["</head>", "</HEAD >", "</head\n>", "<body>", "<BODY class='x'>"]),
    pieces=st.integers(1, 40),
)
def test_the_head_end_is_found_past_every_decoy(
    before: list[str], after: list[str], closing: str, pieces: int
) -> None:
    head = "<html><head>" + "".join(before)
    document = (head + closing + "".join(after) + "</body></html>").encode()
    scanner = scan(document, pieces)
    assert scanner.head_end == len(head.encode())
    scripts = [i for i, d in enumerate(before) if d.startswith("<script")]
    if scripts:  # the first real script start tag, not one inside a comment or a template
        assert scanner.first_script(document) == len(
            ("<html><head>" + "".join(before[: scripts[0]])).encode()
        )
    else:
        assert scanner.first_script(document) is None


def test_an_unfinished_head_is_waited_for() -> None:
    scanner = HeadScanner(1024)
    assert not scanner.feed(b"<html><head><script>x = '</he")
    assert not scanner.feed(b"<html><head><script>x = '</head>'</scr")
    assert scanner.feed(b"<html><head><script>x = '</head>'</script></head>", final=True)
    assert scanner.head_end == len(b"<html><head><script>x = '</head>'</script>")


def _page(html: str, **headers: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return HTMLResponse(html, headers=headers)

    return endpoint


def client_for(
    make_client: MakeClient, make_config: Callable[..., Config], page: str, **headers: str
) -> TestClient:
    config = make_config(consent=ConsentSection(google_consent_mode=ConsentModeSection(enabled=True)))
    return make_client(config, app=Starlette(routes=[Route("/", _page(page, **headers))]))


GTAG = re.compile(
    r"<script( nonce=\"[^\"]+\")?>window\.dataLayer.*?gtag\('consent','default',(\{.*?\})\);</script>"
)


def test_consent_mode_default_runs_before_any_script(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    page = (
        "<html><head><!-- <script> --><title>t</title><script src='/gtm.js'></script></head>"
        "<body></body></html>"
    )
    client = client_for(make_client, make_config, page)
    html = client.get("/").text
    match = GTAG.search(html)
    assert match is not None and html.index(match[0]) < html.index("<script src='/gtm.js'>")
    assert html.index("<!-- <script> -->") < html.index(match[0])
    state = json.loads(match[2])
    assert state.pop("wait_for_update") == 500
    assert state == {
        "ad_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
        "analytics_storage": "denied",
        "functionality_storage": "denied",
        "personalization_storage": "denied",
        "security_storage": "granted",  # granted by what is strictly necessary
    }
    consent(client, "analytics")
    granted = json.loads(GTAG.search(client.get("/").text)[2])  # type: ignore[index]
    assert granted["analytics_storage"] == "granted" and granted["ad_storage"] == "denied"


def test_the_pages_csp_nonce_is_used(make_client: MakeClient, make_config: Callable[..., Config]) -> None:
    csp = "default-src 'self'; script-src 'self' 'nonce-r4nd0m+/='"
    page = "<html><head><script nonce='r4nd0m+/='>1</script></head><body></body></html>"
    html = client_for(make_client, make_config, page, **{"content-security-policy": csp}).get("/").text
    assert '<script nonce="r4nd0m+/=">window.dataLayer' in html
    assert '<script nonce="r4nd0m+/=" src="/_koekje/banner.js' in html


def test_without_a_script_in_the_head_the_default_goes_before_its_end(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    html = (
        client_for(make_client, make_config, "<html><head><title>t</title></head><body></body></html>")
        .get("/")
        .text
    )
    assert html.index("gtag('consent','default'") < html.index("banner.css") < html.index("</head>")


def test_a_changed_page_drops_the_apps_validators(make_client: MakeClient) -> None:
    async def page(request: Request) -> Response:
        return HTMLResponse(
            "<html><head></head><body>x</body></html>", headers={"etag": '"v1"', "accept-ranges": "bytes"}
        )

    client = make_client(app=Starlette(routes=[Route("/", page)]))
    response = client.get("/")
    assert "banner.js" in response.text
    assert "etag" not in response.headers and "accept-ranges" not in response.headers


def test_a_page_without_head_end_gets_the_tags_before_body(make_client: MakeClient) -> None:
    async def page(request: Request) -> Response:
        async def parts() -> object:
            yield b"<html><head><title>t</title>"
            yield b"<body><p>no closing head</p></body></html>"

        return StreamingResponse(parts(), media_type="text/html")  # type: ignore[arg-type]

    html = make_client(app=Starlette(routes=[Route("/", page)])).get("/").text
    assert html.index("banner.js") < html.index("<body>")


@pytest.mark.parametrize(
    "hostile",
    [
        b'<meta a="x ' * 20_000,  # a tag that never ends, full of half-open values
        b"<!-- " + b"-- > " * 20_000,  # a comment that never ends
        b"<script>" + b"</scrip " * 20_000,  # a script that never ends
        b"<a " + b"= " * 20_000,
    ],
)
def test_hostile_heads_cost_linear_time(hostile: bytes) -> None:
    """Each would take exponential time in a backtracking pattern; here each finishes (and finds nothing)."""
    scanner = HeadScanner(len(hostile) + 12)
    page = b"<html><head>" + hostile
    assert scanner.feed(page, final=True)  # the tags would go before the hostile markup
    assert scanner.head_end == 12 and scanner.fallback


@pytest.mark.parametrize(
    "head",
    [
        "<template><template></template></head></template>",  # a nested template: not followed
        '<meta content="never closed></head>',
    ],
)
def test_markup_it_does_not_follow_gets_the_tags_before_it(head: str) -> None:
    """Not inside what it cannot follow, and not left out: before it, still in the head."""
    scanner = HeadScanner(1024)
    page = f"<html><head><title>t</title>{head}<body>x</body></html>".encode()
    assert not scanner.feed(page)  # not yet: more of the page might make it clear
    assert scanner.feed(page, final=True)
    assert scanner.head_end == len(b"<html><head><title>t</title>") and scanner.fallback
    whole = HeadScanner(1024)
    assert whole.whole(page) and (whole.head_end, whole.fallback) == (scanner.head_end, True)


def test_only_the_first_bytes_are_looked_at() -> None:
    page = b"<html><head>" + b"<meta x>" * 1000 + b"</head>"
    scanner = HeadScanner(1000)
    assert scanner.feed(page, final=True) and scanner.fallback
    assert scanner.head_end == 996 and page[996:1000] == b"<met"  # before the tag the limit cut
    whole = HeadScanner(len(page))
    assert whole.feed(page, final=True) and not whole.fallback and whole.head_end == len(page) - 7


OPENERS = ["<!--", "<script>", "<title>", '<meta content="', "<template>", "<style>"]
CLOSERS = ["-->", "</script>", "</title>", '">', "</template>", "</style>", ""]


@settings(max_examples=300)
@given(
    head=st.lists(st.sampled_from(DECOYS + OPENERS + CLOSERS), max_size=6),
    tails=st.lists(st.sampled_from(DECOYS + CLOSERS), min_size=2, max_size=3),
)
def test_a_head_seen_before_is_answered_as_the_walk_would(head: list[str], tails: list[str]) -> None:
    """Pages that share everything up to their first "</head>" but not what follows (which can close a
    comment, a script or an attribute value opened before it): the remembered answer is only ever the
    walk's own."""
    prefix = ("<html><head>" + "".join(head) + "</head>").encode()
    for tail in tails:
        page = prefix + tail.encode() + b"<body>x</body>"
        remembered, walked = HeadScanner(len(page)), HeadScanner(len(page))
        remembered.whole(page)
        walked.feed(page, final=True)  # never asks what it remembers
        assert (remembered.head_end, remembered.fallback) == (walked.head_end, walked.fallback)


def test_the_common_head_is_remembered() -> None:
    page = b"<!doctype html><html><head><title>remembered</title></head><body>x</body></html>"
    HeadScanner(len(page)).whole(page)
    assert hash(page[: page.index(b"</head") + 7]) in inject._KNOWN_HEADS


# -- pages koekje cannot put its banner into: said, counted, never held up --------------------------------


def test_a_page_compressed_inside_koekje_is_said_loudly_once(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    from starlette.middleware.gzip import GZipMiddleware

    big = "<!doctype html><html><head><title>t</title></head><body>" + "x" * 2000 + "</body></html>"

    async def page(request: Request) -> Response:
        return HTMLResponse(big)

    inner = GZipMiddleware(Starlette(routes=[Route("/", page)]))
    client = make_client(app=inner)
    with caplog.at_level("ERROR", logger="koekje"):
        for _ in range(3):
            response = client.get("/")
            assert response.text == big  # untouched (httpx decompresses)
    [said] = [r.getMessage() for r in caplog.records if "compressed" in r.getMessage()]
    assert "add GZipMiddleware before KoekjeMiddleware" in said
    assert client.app.runtime.pages.counts["encoded_by_app"] == 3  # type: ignore[attr-defined]


def test_compressing_outside_koekje_keeps_the_banner(make_client: MakeClient) -> None:
    from starlette.middleware.gzip import GZipMiddleware

    big = "<!doctype html><html><head><title>t</title></head><body>" + "x" * 2000 + "</body></html>"

    async def page(request: Request) -> Response:
        return HTMLResponse(big)

    client = make_client(app=Starlette(routes=[Route("/", page)]))
    outer = TestClient(GZipMiddleware(client.app), base_url="http://shop.test")
    response = outer.get("/")
    assert response.headers["content-encoding"] == "gzip"
    assert 'id="koekje"' in response.text and "banner.js" in response.text


def test_a_head_slow_to_arrive_is_not_held_back(make_client: MakeClient) -> None:
    now = [0.0]
    released_at_second_part: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]}
        await send(start)
        await send({"type": "http.response.body", "body": b"<html><head><title>slo", "more_body": True})
        now[0] += inject_page.MAX_HELD_SECONDS + 0.1  # the app takes its time over the rest of its head
        await send({"type": "http.response.body", "body": b"w</title>", "more_body": True})
        released_at_second_part.append(client.app.runtime.pages.counts["slow_head"])  # type: ignore[attr-defined]
        await send(
            {"type": "http.response.body", "body": b"</head><body>hi</body></html>", "more_body": False}
        )

    client = make_client(app=app)
    client.app.runtime.pages.monotonic = lambda: now[0]  # type: ignore[attr-defined]
    response = client.get("/")
    assert (
        response.text == "<html><head><title>slow</title></head><body>hi</body></html>"
    )  # as the app sent it
    assert released_at_second_part == [1]  # let go as soon as the deadline was seen, not at the page's end
