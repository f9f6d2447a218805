"""The banner without JavaScript: the first layer in the page, its form posts, the settings page."""

import re
from collections.abc import Callable
from html.parser import HTMLParser

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from support import consent, demo_config, ledger, set_cookie_names

from koekje.middleware import Config
from koekje.middleware.inject import body_start, page_language
from koekje.middleware.markup import MAX_RETURN_PATH, safe_return

MakeClient = Callable[..., TestClient]
FORM = {"content-type": "application/x-www-form-urlencoded"}
SAME = {**FORM, "sec-fetch-site": "same-origin"}


def post(client: TestClient, body: str, **headers: str) -> object:
    return client.post("/_koekje/consent", content=body.encode(), headers=headers, follow_redirects=False)


def test_the_first_layer_is_the_first_thing_in_the_body(make_client: MakeClient) -> None:
    client = make_client()
    page = client.get("/kennisbank/x?a=1&b=%22").text
    body = page.index("<body>") + len("<body>")
    assert page[body:].startswith('<section class="koekje" id="koekje" role="dialog"')
    form = re.search(r'<form method="post" action="([^"]+)">', page)
    assert form is not None and form[1] == "/_koekje/consent"
    assert '<input type="hidden" name="return" value="/kennisbank/x?a=1&amp;b=%22">' in page
    assert page.count('hidden name="koekje"') == 0  # three plain submit buttons, no pre-ticked box
    assert re.findall(r'name="koekje" value="(\w+)"(?! hidden)', page) == ["reject", "choose", "accept"]
    assert not re.search(r'name="category" value="\w+"[^>]* checked', page)


def test_a_visitor_who_chose_gets_no_banner_markup(make_client: MakeClient) -> None:
    client = make_client()
    consent(client, "analytics")
    page = client.get("/x").text
    assert 'id="koekje"' not in page and "banner.js" in page


def test_the_floating_link_is_rendered_for_a_visitor_who_chose(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    base = make_config()
    client = make_client(make_config(banner=msgspec.structs.replace(base.banner, floating_button=True)))
    consent(client)
    page = client.get("/en/a?q=1").text
    link = re.search(r'<a class="koekje-floating" href="([^"]+)"[^>]*>([^<]+)</a>', page)
    assert link is not None
    assert (
        link[1] == "/_koekje/settings?lang=nl&amp;return=/en/a%3Fq%3D1" and link[2] == "Cookie-instellingen"
    )


def test_accept_all_by_form_is_recorded_and_goes_back(make_client: MakeClient) -> None:
    client = make_client()
    response = post(client, "koekje=accept&lang=en&return=/kennisbank/x?a=1", **SAME)
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert response.headers["location"] == "/kennisbank/x?a=1"  # type: ignore[attr-defined]
    assert "koekje_consent" in set_cookie_names(response)  # type: ignore[arg-type]
    [row] = ledger(client)
    assert row["method"] == "form" and row["lang"] == "en"
    assert row["categories"] == ["analytics", "marketing", "necessary", "personalization"]


def test_a_choice_of_services_by_form(make_client: MakeClient, make_config: Callable[..., Config]) -> None:
    client = make_client(demo_config(make_config()))
    body = "koekje=save&category=analytics&service=youtube&service=nonsense&category=tracking&return=/"
    assert post(client, body, **SAME).status_code == 303  # type: ignore[attr-defined]
    [row] = ledger(client)
    assert row["categories"] == ["analytics", "necessary"] and row["services"] == ["youtube"]
    assert client.app.runtime.engine.counts["form_unknown_names"] == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"sec-fetch-site": "cross-site"}, 403),
        ({"sec-fetch-site": "same-site"}, 403),  # a sibling subdomain is another site's page
        ({"origin": "https://evil.test"}, 403),
        ({"referer": "https://evil.test/page"}, 403),
        ({"origin": "null"}, 200),  # a page with Referrer-Policy: no-referrer: the visitor confirms
        ({}, 200),  # an old browser that says nothing
        ({"sec-fetch-site": "none"}, 200),
    ],
)
def test_a_form_post_not_shown_to_be_from_this_site_records_nothing(
    make_client: MakeClient, headers: dict[str, str], status: int
) -> None:
    client = make_client()
    response = post(client, "koekje=accept&lang=en&return=/x", **FORM, **headers)
    assert response.status_code == status  # type: ignore[attr-defined]
    assert set_cookie_names(response) == []  # type: ignore[arg-type]
    page = response.text  # type: ignore[attr-defined]
    assert "please confirm it here" in page and '<form method="post" action="/_koekje/consent">' in page
    assert response.headers["x-frame-options"] == "DENY"  # type: ignore[attr-defined]
    assert ledger(client) == []


@pytest.mark.parametrize(
    "headers",
    [{"origin": "http://shop.test"}, {"referer": "http://shop.test/x?y"}, {"sec-fetch-site": "same-origin"}],
)
def test_a_form_post_from_this_site_is_recorded(make_client: MakeClient, headers: dict[str, str]) -> None:
    client = make_client()
    assert post(client, "koekje=reject&return=/x", **FORM, **headers).status_code == 303  # type: ignore[attr-defined]
    assert [row["categories"] for row in ledger(client)] == [["necessary"]]


@pytest.mark.parametrize(
    ("body", "status"),
    [("koekje=maybe", 400), ("koekje=accept&" + "x=1&" * 100, 400), ("koekje=accept&x=" + "y" * 9000, 413)],
)
def test_bad_form_posts_get_a_page_and_change_nothing(
    make_client: MakeClient, body: str, status: int
) -> None:
    client = make_client()
    response = post(client, body, **SAME)
    assert response.status_code == status  # type: ignore[attr-defined]
    assert "text/html" in response.headers["content-type"]  # type: ignore[attr-defined]
    assert ledger(client) == []


def test_choose_leads_to_the_settings_page(make_client: MakeClient) -> None:
    client = make_client()
    response = post(client, "koekje=choose&lang=en&return=/a%2520b%3Fc%3D1", **SAME)
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert response.headers["location"] == "/_koekje/settings?lang=en&return=/a%2520b%3Fc%3D1"  # type: ignore[attr-defined]
    page = client.get(response.headers["location"])  # type: ignore[attr-defined]
    assert page.status_code == 200 and "<h1" in page.text
    assert '<input type="hidden" name="return" value="/a%20b?c=1">' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert ledger(client) == []
    assert "koekje-reference" not in page.text  # no decision yet: no reference
    consent(client, "analytics")
    digits = client.get("/_koekje/my-data").json()["cookie"]["id"][:12].upper()
    settings = client.get("/_koekje/settings?lang=en").text  # the reference to quote in a letter
    shown = f'<strong class="koekje-reference">{digits[:4]}-{digits[4:8]}-{digits[8:]}</strong>'
    assert shown in settings and shown in client.get("/_koekje/banner.html?lang=en").text  # reopened too


@pytest.mark.parametrize(
    "target",
    [
        "//evil.test/x",
        "/\\evil.test",
        "https://evil.test",
        "javascript:alert(1)",
        "/a\r\nSet-Cookie: x=1",
        "",
    ],
)
def test_a_form_never_sends_the_visitor_off_the_site(make_client: MakeClient, target: str) -> None:
    client = make_client()
    response = client.post(
        "/_koekje/consent", data={"koekje": "reject", "return": target}, headers=SAME, follow_redirects=False
    )
    assert response.headers["location"] == "/"


@given(st.text(max_size=60))
def test_a_return_path_is_a_path_on_this_site(value: str) -> None:
    path = safe_return(value)
    assert path.startswith("/") and not path.startswith(("//", "/\\"))
    assert all(ord(ch) > 0x20 and ch not in "\\\x7f" for ch in path)
    assert path in (value, "/")


_SITES: dict[object, TestClient] = {}  # one site per run of the test below, not one per example


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


@settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # one site, all examples
@given(st.text(alphabet="<>\"&'/=ab ", max_size=20))
def test_the_return_path_never_becomes_markup(make_client: MakeClient, junk: str) -> None:
    client = _SITES.get(make_client) or _SITES.setdefault(make_client, make_client())
    page = client.get("/x", params={"q": junk}).text
    banner = page[page.index("<section") : page.index("</section>")]
    parser = _Tags()
    parser.feed(banner)
    assert parser.tags.count("input") == 6 and "script" not in parser.tags


@pytest.mark.parametrize(
    ("page", "final", "expected"),
    [
        (b"<head></head><body class='x'>hi", True, b"hi"),
        (b"<head></head>\n<!-- c --> <BODY>hi", True, b"hi"),
        (b"<head></head><p>hi", True, b"<p>hi"),  # no body tag: the banner starts the body
        (b"<head></head><bo", False, None),  # wait for the rest of the tag
        (b"<head></head><body class='a>", False, None),
        (b"<head><title>t</title><body data-x='>'>hi", True, b"hi"),  # no </head>
    ],
)
def test_the_start_of_the_body(page: bytes, final: bool, expected: bytes | None) -> None:
    head_end = page.index(b"</head>") if b"</head>" in page else page.index(b"<body")
    at = body_start(page, head_end, final)
    assert (page[at:] if at is not None else None) == expected


def test_the_page_language() -> None:
    assert page_language(b'<!doctype html><html class="x" lang="de-CH"><head>', 40) == "de"
    assert page_language(b'<html data-lang="fr"><head>', 25) is None


def test_the_fragment_cannot_be_framed(make_client: MakeClient) -> None:
    """Found by trying: another site framing banner.html got a click on "Accept all" recorded."""
    response = make_client().get("/_koekje/banner.html?lang=en&return=/")
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_a_page_with_the_banner_varies_by_cookie_and_language(make_client: MakeClient) -> None:
    """Found by trying: a page the app called public showed the banner, or not, to whoever came next."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def page(request: object) -> HTMLResponse:
        lang = ' lang="en"' if request.path_params["named"] == "named" else ""  # type: ignore[attr-defined]
        html = f"<!doctype html><html{lang}><head><title>t</title></head><body>x</body></html>"
        return HTMLResponse(html, headers={"cache-control": "public, max-age=600", "vary": "Accept-Encoding"})

    client = make_client(app=Starlette(routes=[Route("/{named}", page)]))
    assert client.get("/named").headers["vary"] == "Accept-Encoding, Cookie"
    assert client.get("/unnamed").headers["vary"] == "Accept-Encoding, Cookie, Accept-Language"
    consent(client)
    assert client.get("/named").headers["vary"] == "Accept-Encoding, Cookie"


def test_a_choice_to_confirm_is_shown_as_it_was_made(make_client: MakeClient) -> None:
    """Found by trying: the confirmation page showed nothing ticked, so the visitor chose all over again."""
    response = post(make_client(), "koekje=save&category=analytics&lang=en&return=/", **FORM, origin="null")
    assert re.search(r'name="category" value="analytics"[^>]* checked', response.text)  # type: ignore[attr-defined]
    assert not re.search(r'name="category" value="marketing"[^>]* checked', response.text)  # type: ignore[attr-defined]


def test_a_page_with_a_long_address_is_come_back_to_without_its_query(make_client: MakeClient) -> None:
    """A return path has a bound (a form field is hostile): a page whose query goes past it is come back
    to without the query, not sent to the home page, and its banner does not carry the long address."""
    client = make_client()
    query = "utm_campaign=" + "x" * MAX_RETURN_PATH
    page = client.get(f"/kennisbank/artikel?{query}").text
    assert 'name="return" value="/kennisbank/artikel"' in page and query not in page
    page = client.get("/a?q=1").text
    assert 'name="return" value="/a?q=1"' in page
    page = client.get("/" + "p" * MAX_RETURN_PATH).text
    assert 'name="return" value="/"' in page
    response = post(client, "koekje=accept&lang=en&return=/kennisbank/artikel", **SAME)
    assert response.headers["location"] == "/kennisbank/artikel"  # type: ignore[attr-defined]
