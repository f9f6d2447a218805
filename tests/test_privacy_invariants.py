"""The privacy invariants (README, "Privacy invariants") that this stage of koekje implements, each proven on
the real store. (3: tests/analytics/test_store.py; 6: tests/analytics/test_dashboard.py.)"""

import uuid
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from support import CLIENT_IP, SECRET, FakeClock, consent, cookie_from, page_views, runtime_of

from koekje.analytics import Method
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
    assert runtime_of(client).capture.dropped["no_consent"] > 0


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
