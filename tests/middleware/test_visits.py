"""Visits: a visit ends after 30 minutes without a recorded page; new vs returning visitors; the cookie that
carries the visit is hostile input, and goes with analytics consent."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from support import FakeClock, consent, runtime_of, stored

from koekje.analytics.ledger import Method
from koekje.middleware import Config
from koekje.middleware.consent import Consent
from koekje.middleware.page import _private
from koekje.middleware.visits import MAX_VISIT_SECONDS, Visits

MakeClient = Callable[..., TestClient]
COLUMNS = ("ts", "path", "visitor_id", "visit_start", "entry", "returning", "referrer_host")


def views(client: TestClient) -> list[dict[str, Any]]:
    runtime = runtime_of(client)
    assert runtime.flush(timeout=30)
    return stored(runtime, "page_views", COLUMNS, "ts, path")


def renewed(response: Any) -> bool:
    """Whether a response renews the visit cookie (an expiry does not count)."""
    return any(
        h.startswith("koekje_visit=") and "Max-Age=0" not in h
        for h in response.headers.get_list("set-cookie")
    )


def test_a_visit_ends_after_thirty_minutes_without_a_page(make_client: MakeClient, clock: FakeClock) -> None:
    client = make_client()
    consent(client, "analytics")
    clock.advance(minutes=1)
    client.get("/")  # the visitor decided a minute ago: their first visit
    clock.advance(minutes=29)
    client.get("/implantologie")  # 29 minutes later: the same visit, its timeout renewed
    clock.advance(minutes=29)
    client.get("/cursussen")
    clock.advance(minutes=31)  # the browser let the cookie expire
    client.cookies.delete("koekje_visit")
    client.get("/")
    rows = views(client)
    assert [r["entry"] for r in rows] == [True, False, False, True]
    assert [r["returning"] for r in rows] == [False, False, False, True]
    first, second = rows[0]["visit_start"], rows[3]["visit_start"]
    assert [r["visit_start"] for r in rows] == [first, first, first, second] and second > first
    assert len({r["visitor_id"] for r in rows}) == 1


def test_the_cookie_lives_as_long_as_the_timeout(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    analytics = msgspec.structs.replace(make_config().analytics, visit_timeout_minutes=5)
    client = make_client(make_config(analytics=analytics))
    consent(client, "analytics")
    [renewal] = [h for h in client.get("/").headers.get_list("set-cookie") if h.startswith("koekje_visit=")]
    assert "Max-Age=300" in renewal and "HttpOnly" in renewal and "SameSite=Lax" in renewal
    assert "Secure" not in renewal  # plain http here; https adds it


def test_no_visit_without_analytics_consent(make_client: MakeClient) -> None:
    client = make_client()
    client.cookies.set("koekje_visit", "1795348800.1")
    assert not renewed(client.get("/"))
    consent(client, "personalization")
    assert not renewed(client.get("/"))


def test_pages_that_are_not_recorded_do_not_extend_a_visit(make_client: MakeClient) -> None:
    client = make_client()
    consent(client, "analytics")
    for response in (
        client.get("/", headers={"sec-purpose": "prefetch"}),
        client.get("/api"),
        client.get("/missing"),
    ):
        assert not renewed(response)


def test_moving_around_the_site_is_not_a_source(make_client: MakeClient) -> None:
    client = make_client()
    consent(client, "analytics")
    client.get("/", headers={"referer": "https://www.google.nl/search?q=tandarts"})
    client.get("/implantologie", headers={"referer": "http://shop.test/"})
    assert [r["referrer_host"] for r in views(client)] == ["www.google.nl", ""]


# -- the cookie's value is hostile ---------------------------------------------------------------------------

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def decided(at: datetime) -> Consent:
    categories = frozenset({"necessary", "analytics"})
    return Consent(categories, frozenset(), 1, uuid.uuid4(), at, Method.BANNER, uuid.uuid4())


def test_new_or_returning_follows_the_decision() -> None:
    visits = Visits("koekje_visit", timedelta(minutes=30))
    fresh, _ = visits.track(decided(NOW - timedelta(minutes=2)), {}, NOW, secure=True)
    back, header = visits.track(decided(NOW - timedelta(days=3)), {}, NOW, secure=True)
    assert fresh.entry and not fresh.returning and back.entry and back.returning
    assert header[1].decode().startswith(f"koekje_visit={int(NOW.timestamp())}.1;") and header[1].endswith(
        b"; Secure"
    )


def test_a_visit_cookie_from_the_future_or_the_distant_past_starts_a_new_visit() -> None:
    visits = Visits("koekje_visit", timedelta(minutes=30))
    visitor = decided(NOW - timedelta(days=3))
    now = int(NOW.timestamp())
    for value in (f"{now + 3600}.0", f"{now - MAX_VISIT_SECONDS - 1}.0"):
        visit, _ = visits.track(visitor, {"koekje_visit": value}, NOW, secure=False)
        assert visit.entry and visit.start == now
    assert visits.counts["visit_cut"] == 2
    visit, _ = visits.track(visitor, {"koekje_visit": f"{now - 600}.0"}, NOW, secure=False)
    assert not visit.entry and visit.start == now - 600 and not visit.returning


def test_a_visits_pages_reuse_its_renewal_until_the_clock_cuts_it() -> None:
    # The second page of a visit is answered from what its first continuing page worked out: the same
    # visit and header, per Secure flag, and still cut when the visit has grown too long.
    visits = Visits("koekje_visit", timedelta(minutes=30))
    visitor = decided(NOW - timedelta(days=3))
    cookie = {"koekje_visit": f"{int(NOW.timestamp()) - 600}.1"}
    first = visits.track(visitor, cookie, NOW, secure=False)
    again = visits.track(visitor, cookie, NOW + timedelta(minutes=5), secure=False)
    secure = visits.track(visitor, cookie, NOW, secure=True)
    # The same objects: worked out once. (The header's pair is compared by its parts: compiled, the pair is
    # a C struct, boxed into a new tuple at each return to Python.)
    assert again[0] is first[0] and again[1][0] is first[1][0] and again[1][1] is first[1][1]
    assert not first[0].entry and first[0].returning
    assert secure[1][1].endswith(b"; Secure") and not first[1][1].endswith(b"; Secure")
    late = NOW + timedelta(seconds=MAX_VISIT_SECONDS)
    cut, header = visits.track(visitor, cookie, late, secure=False)
    assert cut.entry and cut.start == int(late.timestamp()) and header != first[1]
    assert visits.counts["visit_cut"] == 1


@given(st.text(max_size=40))
def test_any_cookie_value_gives_a_sound_visit(value: str) -> None:
    visits = Visits("koekje_visit", timedelta(minutes=30))
    visit, (name, header) = visits.track(
        decided(NOW - timedelta(days=1)),
        {"koekje_visit": value},
        NOW,
        secure=False,
    )
    now = int(NOW.timestamp())
    assert now - MAX_VISIT_SECONDS <= visit.start <= now + 60
    assert name == b"set-cookie" and header.decode("ascii").startswith(f"koekje_visit={visit.start}.")
    assert visit.entry or value.startswith(str(visit.start))


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ([], b"private"),
        ([b"public, max-age=600, s-maxage=3600"], b"private, max-age=600"),
        ([b"no-cache"], b"private, no-cache"),
        ([b"private, max-age=60"], b"private, max-age=60"),
        ([b"no-store"], b"no-store"),
        # found by trying: only the first header was looked at, and a qualified private= counted as private
        ([b"", b"public, s-maxage=600"], b"private"),
        ([b"max-age=60", b"PUBLIC"], b"private, max-age=60"),
        ([b'private="x-foo", public, s-maxage=600'], b"private"),
    ],
)
def test_a_renewal_keeps_shared_caches_out_and_the_apps_own_directives(
    said: list[bytes], expected: bytes
) -> None:
    headers = [(b"content-type", b"text/html")] + [(b"Cache-Control", value) for value in said]
    _private(headers)
    assert [v for n, v in headers if n.lower() == b"cache-control"] == [expected]


async def _public_page(request: Request) -> Response:
    response = HTMLResponse("<!doctype html><html><head></head><body>cached</body></html>")
    response.raw_headers.append((b"Cache-Control", b"public, max-age=600"))
    return response


def test_a_cookie_change_replaces_every_cache_header_of_the_app(make_client: MakeClient) -> None:
    """Found by trying: the app's "Cache-Control: public" (capitalised) survived next to koekje's own."""
    client = make_client(app=Starlette(routes=[Route("/{path:path}", _public_page)]))
    consent(client, "analytics")
    assert client.get("/").headers.get_list("cache-control") == ["private, max-age=600"]  # a renewal
    client.cookies.set("koekje_vid", "A" * 22)  # koekje 0.1's cookie: removed, so no cache at all
    assert client.get("/").headers.get_list("cache-control") == ["private, no-store"]


def test_withdrawal_expires_the_visit_whatever_the_enforcement(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    """Found by trying: with ``consent.enforce = "off"`` the visit cookie outlived the withdrawal; it is
    koekje's own, so koekje removes it itself."""
    consent_section = msgspec.structs.replace(make_config().consent, enforce="off")
    client = make_client(make_config(consent=consent_section))
    consent(client, "analytics")
    assert renewed(client.get("/"))
    withdrawal = consent(client)
    expired = [h for h in withdrawal.headers.get_list("set-cookie") if h.startswith("koekje_visit=")]
    assert expired and "Max-Age=0" in expired[0] and "koekje_visit" not in client.cookies
    client.cookies.set("koekje_visit", "1795348800.0")  # one that comes back (another tab, a restore)
    page = client.get("/")
    assert any(
        h.startswith("koekje_visit=") and "Max-Age=0" in h for h in page.headers.get_list("set-cookie")
    )
    assert page.headers["cache-control"] == "private, no-store"


def test_the_sites_other_spellings_are_no_source_either(make_client: MakeClient) -> None:
    client = make_client()
    consent(client, "analytics")
    for referer in ("http://shop.test./a", "https://www.shop.test/b", "https://www.google.nl/"):
        client.get("/", headers={"referer": referer})
    assert sorted(r["referrer_host"] for r in views(client)) == ["", "", "www.google.nl"]
