"""The privacy invariants (README, "Privacy invariants") that this stage of koekje implements, each proven on
the real store. (3: tests/analytics/test_store.py; 6: tests/analytics/test_dashboard.py.)"""

import uuid
from collections.abc import Callable, MutableMapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import anyio
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from support import CLIENT_IP, SECRET, FakeClock, consent, cookie_from, declared, page_views, runtime_of

from koekje.analytics import Method
from koekje.middleware import Config
from koekje.middleware.config import SiteSection
from koekje.middleware.consent import ConsentCookies

MakeClient = Callable[..., TestClient]


def _signed(clock: FakeClock, categories: set[str], *, age_days: int = 0, key: str = SECRET) -> str:
    signer_clock = FakeClock(clock.now - timedelta(days=age_days))
    jar = ConsentCookies(
        (key,),
        categories=("analytics", "personalization", "marketing"),
        revision=1,
        max_age=timedelta(days=365),
        clock=signer_clock,
    )
    return jar.dumps(
        jar.new(frozenset(categories), uuid.uuid4(), method=Method.BANNER, visitor_id=uuid.uuid4())
    )


def _consent_cookies(clock: FakeClock) -> st.SearchStrategy[str | None]:
    """Consent cookie values that do not grant analytics: absent, garbage, forged, expired, refused."""
    return st.one_of(
        st.none(),
        st.text(
            alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=';,"\\'),
            max_size=200,
        ),
        st.just(_signed(clock, {"analytics"}, key="forged-key-forged-key-forged-key-xx")),
        st.just(_signed(clock, {"analytics", "marketing"}, age_days=400)),
        st.sampled_from([_signed(clock, set()), _signed(clock, {"marketing", "personalization"})]),
    )


_paths = st.lists(st.text(min_size=1, max_size=20), max_size=4).map(
    lambda parts: "/" + "/".join(quote(p, safe="") for p in parts)
)
_headers = st.fixed_dictionaries(
    {},
    optional={
        "referer": st.text(max_size=100).map(lambda s: quote(s, safe=":/?=&")),
        "user-agent": st.text(max_size=100).map(lambda s: s.encode("ascii", "replace").decode()),
        "x-forwarded-for": st.ip_addresses().map(str),
        "accept-language": st.sampled_from(["nl", "en-GB,en;q=0.8", "*"]),
        "sec-purpose": st.sampled_from(["prefetch", "prefetch;prerender"]),
    },
)


def test_invariant_1_without_consent_nothing_is_stored_and_no_identifier_is_set(
    make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client()  # one app for all examples: the store accumulates whatever slips through

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def request_without_consent(data: st.DataObject) -> None:
        client.cookies.clear()
        value = data.draw(_consent_cookies(clock), label="consent cookie")
        if value is not None:
            client.cookies.set("koekje_consent", value)
        if data.draw(st.booleans(), label="has a visitor id cookie"):
            client.cookies.set("koekje_vid", "A" * 22)
        response = client.get(data.draw(_paths, label="path"), headers=data.draw(_headers, label="headers"))
        assert response.status_code < 500
        for cookie in response.headers.get_list("set-cookie"):
            # The only thing koekje may do with cookies here is remove one.
            assert "Max-Age=0" in cookie, cookie
        assert page_views(client) == []

    request_without_consent()
    assert runtime_of(client).capture.counts()["no_consent"] > 0


def test_invariant_1_the_vid_cookie_is_removed_without_consent(make_client: MakeClient) -> None:
    client = make_client()
    client.cookies.set("koekje_vid", "B" * 22, domain="shop.test")
    response = client.get("/")
    assert (
        response.headers["set-cookie"].startswith("koekje_vid=")
        and "Max-Age=0" in response.headers["set-cookie"]
    )


def test_invariant_2_the_full_ip_address_is_stored_nowhere(make_client: MakeClient) -> None:
    client = make_client()
    consent(client, "analytics")
    client.get("/implantologie")
    assert page_views(client)
    store = runtime_of(client).store
    tables = [
        row[0]
        for row in store.query(
            "SELECT name FROM system.tables WHERE database = {db:String}", {"db": store.settings.database}
        )
    ]
    assert {"page_views", "consent_ledger"} <= set(tables)
    for table in tables:
        # Every column but the visitor-count sketches (hashes, which cannot be read back as text).
        columns = [
            name
            for (name,) in store.query(
                "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} "
                "AND type NOT LIKE 'AggregateFunction%'",
                {"db": store.settings.database, "t": table},
            )
        ]
        dump = repr(store.query(f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM {store.table(table)}"))
        assert CLIENT_IP not in dump, table
    assert "203.0.113.0" in repr(store.query(f"SELECT ip_prefix FROM {store.table('page_views')}"))


def test_invariant_4_withdrawal_removes_the_identifier_and_stops_capture_at_once(
    make_client: MakeClient,
) -> None:
    client = make_client()
    consent(client, "analytics", "marketing")
    client.get("/implantologie")
    assert len(page_views(client)) == 1
    response = consent(client)  # withdraw everything but the necessary
    withdrawn = runtime_of(client).engine.codec.loads(cookie_from(response, "koekje_consent"))
    assert withdrawn is not None and withdrawn.visitor_id is None  # the identifier is gone with the consent
    expired = [h for h in response.headers.get_list("set-cookie") if h.startswith("koekje_visit=")]
    assert expired and all("Max-Age=0" in h for h in expired) and "koekje_visit" not in client.cookies
    client.get("/implantologie")
    client.get("/cursussen")
    assert len(page_views(client)) == 1


# -- leaks, over thousands of generated requests (issue 10) ----------------------------------------------

_NECESSARY = {"koekje_consent", "__Host-koekje_consent", "sessionid"}  # sessionid: declared necessary
# The declared marketing cookies (support.declared): _fbp, and YSC of the youtube service, whose category is
# marketing. (Until 2026-12-07 YSC was missing here: CI found it only when no request with GPC had
# superseded the shared marketing consent before one set YSC, which made the failure hard to replay.)
_MARKETING = {"_fbp", "YSC"}
_SITE_COOKIES = ["_fbp=fb.1; Path=/", "_ga_X1=GA1", "sessionid=s; HttpOnly", "cart=1", "YSC=y", "theme=dark"]


def _consent_cookie(clock: FakeClock, categories: set[str]) -> tuple[str, uuid.UUID]:
    jar = ConsentCookies(
        (SECRET,),
        categories=("analytics", "personalization", "marketing"),
        revision=1,
        max_age=timedelta(days=365),
        clock=clock,
    )
    visitor = uuid.uuid4()
    decision = jar.new(frozenset(categories), uuid.uuid4(), method=Method.BANNER, visitor_id=visitor)
    return jar.dumps(decision), visitor


_addresses = st.one_of(
    st.ip_addresses(v=4).filter(lambda ip: ip.packed[-1] != 0),  # (x.y.z.0 is its own truncation)
    st.ip_addresses(v=6).filter(lambda ip: any(ip.packed[6:])),
    st.ip_addresses(v=4).filter(lambda ip: ip.packed[-1] != 0).map(lambda ip: f"::ffff:{ip}"),
).map(str)
_request = st.fixed_dictionaries(
    {
        "address": _addresses,
        "consent": st.sampled_from(["none", "refused", "marketing", "forged", "analytics", "everything"]),
        "path": st.sampled_from(["/", "/implantologie", "/cookies", "/api", "/missing", "/stream"]),
        "method": st.sampled_from(["GET", "GET", "GET", "HEAD", "POST"]),
        "gpc": st.booleans(),
        "sets": st.lists(st.sampled_from(_SITE_COOKIES), max_size=3),
    }
)


def test_leaks_over_thousands_of_generated_requests(
    make_client: MakeClient, make_config: Callable[..., Config], clock: FakeClock
) -> None:
    """Thousands of requests from generated addresses (behind a trusted proxy, so each is a visitor's own),
    with and without every kind of consent, to pages, assets and pages that set cookies: the page views
    stored are the consenting visitors' only, no table holds any of the full addresses, and no response sets
    a cookie beyond the strictly necessary ones and those of what the visitor granted (strict enforcement)."""
    config = make_config(consent=declared(enforce="strict", decisions_per_minute=10_000))
    config = msgspec.structs.replace(config, site=SiteSection(trusted_proxies=("127.0.0.0/8",)))
    client = make_client(config)
    app = client.app
    cookies = {
        kind: _consent_cookie(clock, categories)
        for kind, categories in {
            "refused": set(),
            "marketing": {"marketing"},
            "analytics": {"analytics"},
            "everything": {"analytics", "marketing", "personalization"},
        }.items()
    }
    forged, _ = _signed(clock, {"analytics"}, key="forged-key-forged-key-forged-key-xx"), None
    consenting: set[uuid.UUID] = set()
    addresses: set[str] = set()
    sent = [0]

    async def one(request: dict[str, Any]) -> None:
        kind, headers = request["consent"], [(b"host", b"shop.test"), (b"user-agent", b"Mozilla/5.0 Firefox")]
        if kind in cookies:
            value, visitor = cookies[kind]
            headers.append((b"cookie", f"koekje_consent={value}".encode()))
            if kind in ("analytics", "everything"):
                consenting.add(visitor)
        elif kind == "forged":
            headers.append((b"cookie", f"koekje_consent={forged}".encode()))
        headers.append((b"x-forwarded-for", request["address"].encode()))
        if request["gpc"]:
            headers.append((b"sec-gpc", b"1"))
        query = urlencode([("set", value) for value in request["sets"]]).encode()
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request["method"],
            "scheme": "http", "path": request["path"], "raw_path": request["path"].encode(),
            "query_string": query, "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
            "server": ("shop.test", 80),
        }  # fmt: skip
        answer: list[MutableMapping[str, Any]] = []
        received: list[bool] = []

        async def receive() -> dict[str, Any]:
            if received:  # the body was all: then the client waits (a streamed page listens for it)
                await anyio.sleep_forever()
            received.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            answer.append(message)

        await app(scope, receive, send)
        start = answer[0]
        assert start["status"] < 500
        if kind not in ("analytics", "everything"):
            # What they granted and no more: a marketing grant lets the site's declared marketing cookie
            # through (unless GPC, which refuses marketing); nothing else beyond the strictly necessary.
            # (Until 2026-12-07 this allowed only the necessary ones for a marketing grant too: a case so
            # rare in the generated requests that CI found it only then.)
            granted = _MARKETING if kind == "marketing" and not request["gpc"] else set()
            for name, value in start.get("headers", []):
                if name.lower() == b"set-cookie" and b"Max-Age=0" not in value:
                    assert value.split(b"=", 1)[0].decode() in _NECESSARY | granted, value
        sent[0] += 1

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(_request, min_size=20, max_size=60))
    def browse(requests: list[dict[str, Any]]) -> None:
        for request in requests:  # (an IPv4-mapped address holds an IPv4 one: neither may be kept)
            addresses.update({request["address"], request["address"].removeprefix("::ffff:")})

        async def all_of_them() -> None:
            for request in requests:
                await one(request)

        anyio.run(all_of_them)

    browse()
    assert sent[0] >= 1000
    runtime = runtime_of(client)
    assert runtime.flush(timeout=60)
    store = runtime.store
    stored = {row[0] for row in store.query(f"SELECT DISTINCT visitor_id FROM {store.table('page_views')}")}
    assert stored and stored <= consenting
    tables = [
        name
        for (name,) in store.query(
            "SELECT name FROM system.tables WHERE database = {db:String} AND engine NOT LIKE '%View%'",
            {"db": store.settings.database},
        )
    ]
    for table in tables:
        columns = [
            f"toString(`{name}`)"
            for (name,) in store.query(
                "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} "
                "AND type NOT LIKE 'AggregateFunction%'",
                {"db": store.settings.database, "t": table},
            )
        ]
        values = {
            str(v)
            for row in store.query(f"SELECT {', '.join(columns)} FROM {store.table(table)}")
            for v in row
        }
        assert not addresses & values, table
