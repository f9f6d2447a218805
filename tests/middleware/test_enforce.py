"""The visitor's choice enforced on the site's own cookies, through the middleware on a real store."""

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from support import consent, declared, page_views, runtime_of, set_cookie_names

from koekje.analytics.cookies_seen import undeclared_cookies
from koekje.middleware import Config

MakeClient = Callable[..., TestClient]


def client_with(make_client: MakeClient, make_config: Callable[..., Config], **options: object) -> TestClient:
    return make_client(make_config(consent=declared(**options)))


def visit(client: TestClient, *set_cookies: str) -> list[str]:
    """The names of the cookies a page that sets ``set_cookies`` really sends to the browser."""
    return set_cookie_names(client.get("/cookies", params={"set": list(set_cookies)}))


def test_declared_cookies_wait_for_their_category(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = client_with(make_client, make_config)
    sets = ("_fbp=fb.1; Path=/; HttpOnly", "_ga_X1=GA1; Path=/", "sessionid=abc; HttpOnly")
    assert visit(client, *sets) == ["sessionid"]  # necessary: always
    guard = runtime_of(client).guard
    assert guard.removed[("_fbp", "not_granted")] == 1 and guard.removed[("_ga_*", "not_granted")] == 1
    consent(client, "analytics")
    assert sorted(visit(client, *sets)) == ["_ga_X1", "koekje_visit", "sessionid"]
    consent(client, "analytics", "marketing")
    assert sorted(visit(client, *sets)) == ["_fbp", "_ga_X1", "koekje_visit", "sessionid"]


def test_a_single_service_can_be_granted(make_client: MakeClient, make_config: Callable[..., Config]) -> None:
    client = client_with(make_client, make_config)
    consent(client, services=("youtube",))
    assert visit(client, "YSC=1", "_fbp=2") == ["YSC"]  # youtube's cookie, not the rest of marketing
    assert visit(client, "_pk_id.1.abcd=3") == []


def test_report_mode_lets_undeclared_cookies_through_and_tallies_them(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = client_with(make_client, make_config)
    assert visit(client, "cart=1; Path=/", "cart=2") == ["cart", "cart"]
    client.get("/cookies?set=theme%3Ddark&q=secret")
    runtime = runtime_of(client)
    assert runtime.flush(timeout=30)
    seen = {cookie.name: cookie for cookie in undeclared_cookies(runtime.store, "default")}
    assert set(seen) == {"cart", "theme"}
    assert seen["cart"].count == 2 and seen["cart"].sample_path == "/cookies"  # never the query
    assert seen["theme"].first_seen == seen["theme"].last_seen


def test_strict_mode_removes_undeclared_cookies(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = client_with(make_client, make_config, enforce="strict")
    consent(client, "analytics", "personalization", "marketing")
    assert visit(client, "cart=1", "_fbp=2", "sessionid=3") == ["_fbp", "sessionid", "koekje_visit"]
    assert runtime_of(client).guard.removed[("cart", "undeclared")] == 1


def test_off_leaves_the_sites_cookies_alone(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = client_with(make_client, make_config, enforce="off")
    assert visit(client, "_fbp=1", "cart=2") == ["_fbp", "cart"]


ODD = ["nameless", "=value-only", "my tracker=1", '"quoted"=1', "a(b)=1"]


def test_cookie_names_browsers_keep_but_no_rfc_allows_are_enforced_too(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    """Browsers keep a cookie from "Set-Cookie: nameless" (no name) or with spaces, quotes or non-ASCII in
    its name: strict removes them like any undeclared cookie, report tallies them by name."""
    strict = client_with(make_client, make_config, enforce="strict")
    response = strict.get("/cookies", params={"set": [*ODD, "_fbp=1"]})
    assert [name for name, _ in response.headers.raw if name.lower() == b"set-cookie"] == []
    assert runtime_of(strict).guard.counts["odd_cookie_name"] == len(ODD)
    report = client_with(make_client, make_config)
    raw = report.get("/cookies", params={"set": ODD}).headers.raw
    assert len([name for name, _ in raw if name.lower() == b"set-cookie"]) == len(ODD)
    runtime = runtime_of(report)
    assert runtime.flush(timeout=30)
    names = {cookie.name for cookie in undeclared_cookies(runtime.store, "default")}
    assert names == {"", "my tracker", '"quoted"', "a(b)"}


def test_non_ascii_cookie_names_are_read_as_browsers_read_them(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    guard = runtime_of(client_with(make_client, make_config, enforce="strict")).guard
    headers = [(b"set-cookie", "tr\u00e9cker=1".encode()), (b"set-cookie", b"caf\xe9=2"), (b"x", b"y")]
    assert guard.filter(headers, None, "/") == 2 and headers == [(b"x", b"y")]
    assert ("tr\u00e9cker", "undeclared") in guard.removed and ("caf\u00e9", "undeclared") in guard.removed


def test_odd_names_the_browser_sends_are_expired_in_strict_mode(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = client_with(make_client, make_config, enforce="strict")
    response = client.get("/", headers={"cookie": "nameless; my tracker=1; a;b=2"})
    removals = response.headers.get_list("set-cookie")
    assert any(r.startswith("koekje-expired; Max-Age=0") for r in removals)  # replaces the nameless one
    assert any(r.startswith("my tracker=; Max-Age=0") for r in removals)


def test_withdrawal_expires_the_withdrawn_cookies_everywhere_they_may_live(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = client_with(
        make_client, make_config, cookie_domains=(".shop.test",), cookie_paths=("/", "/shop")
    )
    consent(client, "analytics", "marketing")
    for name in ("_fbp", "_ga_X1", "sessionid"):
        client.cookies.set(name, "x", domain="shop.test")
    response = consent(client, "analytics")  # marketing withdrawn
    expired = [h for h in response.headers.get_list("set-cookie") if h.startswith("_fbp=")]
    assert len(expired) == 4  # the host and .shop.test, each on / and /shop
    assert all("Max-Age=0" in h for h in expired)
    assert {h.split("Domain=")[1].split(";")[0] for h in expired if "Domain=" in h} == {".shop.test"}
    assert "_fbp" not in client.cookies
    assert "_ga_X1" in client.cookies and "sessionid" in client.cookies


def test_a_withdrawn_cookie_that_comes_back_keeps_being_expired(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = client_with(make_client, make_config)
    consent(client)
    client.cookies.set("_fbp", "planted-by-a-script", domain="shop.test")
    client.cookies.set("cart", "1", domain="shop.test")
    response = client.get("/")
    assert set_cookie_names(response) == ["_fbp"]  # cart is undeclared: report mode leaves it
    assert response.headers["cache-control"] == "private, no-store"
    assert "_fbp" not in client.cookies and "cart" in client.cookies


def test_absurd_cookie_headers_neither_crash_nor_expire_without_bound(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = client_with(make_client, make_config, enforce="strict")
    header = "; ".join(f"c{i}={'x' * 20}" for i in range(3000))  # ~80 KB of undeclared cookies
    response = client.get("/", headers={"cookie": header})
    assert response.status_code == 200
    assert len(response.headers.get_list("set-cookie")) <= 32  # a proxy's header buffer holds them
    guard = runtime_of(client).guard
    assert guard.counts["expiries_deferred"] == 1


_SETS = st.lists(
    st.sampled_from(["_fbp=1; HttpOnly", "_ga_Z=2", "YSC=3", "_pk_id.9=4", "sessionid=5", "cart=6"]),
    max_size=6,
)
_DECISIONS = st.fixed_dictionaries(
    {
        "categories": st.lists(st.sampled_from(["analytics", "personalization", "marketing"]), unique=True),
        "services": st.lists(st.sampled_from(["youtube", "matomo"]), unique=True),
    }
)
_CATEGORY = {
    "koekje_visit": "analytics",
    "_fbp": "marketing",
    "_ga_Z": "analytics",
    "YSC": "marketing",
    "_pk_id.9": "analytics",
}
_SERVICE = {"YSC": "youtube", "_pk_id.9": "matomo"}


def test_no_cookie_of_a_category_not_granted_reaches_the_browser(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    """Property (strict): for any sequence of consent states and app responses, what reaches the browser is
    necessary, or granted by category or service; and without analytics consent nothing is recorded."""
    client = client_with(make_client, make_config, enforce="strict", decisions_per_minute=10_000)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(steps=st.lists(st.tuples(st.none() | _DECISIONS, _SETS), min_size=1, max_size=4))
    def sequence(steps: list[tuple[dict[str, list[str]] | None, list[str]]]) -> None:
        client.cookies.clear()
        granted: tuple[set[str], set[str]] = (set(), set())
        for decision, sets in steps:
            if decision is not None:
                response = client.post("/_koekje/consent", json=decision)
                assert response.status_code == 200, response.text
                granted = (set(decision["categories"]), set(decision["services"]))
            for name in visit(client, *sets):
                allowed = (
                    name == "sessionid"
                    or _CATEGORY.get(name) in granted[0]
                    or _SERVICE.get(name, "-") in granted[1]
                )
                assert allowed, (name, granted)

    sequence()
    views = page_views(client)
    runtime = runtime_of(client)
    table = runtime.store.table("consent_ledger")
    rows = runtime.store.query(f"SELECT visitor_id FROM {table} WHERE has(categories, 'analytics')")
    decided_with_stats = {row[0] for row in rows}
    assert {v["visitor_id"] for v in views} <= decided_with_stats  # every event has a grant behind it


def test_undeclared_names_are_remembered_in_a_bounded_cache(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = client_with(make_client, make_config)
    guard = runtime_of(client).guard
    for i in range(5000):
        guard.rule(f"name{i}")
    assert len(guard._rules) <= 4096


def test_enforcement_leaves_responses_without_cookies_untouched(make_client: MakeClient) -> None:
    client = make_client()
    response = client.get("/")
    assert "set-cookie" not in response.headers and "cache-control" not in response.headers


def test_config_json_lists_services_and_cookies_per_category(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = client_with(make_client, make_config)
    body = client.get("/_koekje/config.json?lang=en").json()
    by_id = {category["id"]: category for category in body["categories"]}
    assert [c["name"] for c in by_id["necessary"]["cookies"]] == ["koekje_consent", "sessionid"]
    assert "only if you allow statistics" in by_id["necessary"]["cookies"][0]["purpose"]
    assert [s["id"] for s in by_id["marketing"]["services"]] == ["youtube"]
    assert by_id["marketing"]["services"][0]["provider"] == "Google"
    assert {c["name"]: c["service"] for c in by_id["marketing"]["cookies"]} == {
        "_fbp": None,
        "YSC": "youtube",
    }
    # koekje's visit cookie first, declared by koekje itself
    assert [c["duration"] for c in by_id["analytics"]["cookies"]] == ["30 minutes", "13 months", "13 months"]
    assert by_id["analytics"]["cookies"][0]["name"] == "koekje_visit"
    assert "whether you visited before" in by_id["analytics"]["cookies"][0]["purpose"]


def test_a_grant_of_one_more_service_spends_the_budget(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    """Granting a single service on top of a decision is a grant like any other: refused when the network's
    budget is spent, while taking it back again is not."""
    client = client_with(make_client, make_config, decisions_per_minute=1)
    consent(client, "analytics")
    more = client.post("/_koekje/consent", json={"categories": ["analytics"], "services": ["youtube"]})
    assert more.status_code == 429
    assert client.post("/_koekje/consent", json={"categories": []}).status_code == 200


def test_the_root_path_is_always_among_the_expiry_paths(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    """Found by trying: with only "/shop" configured, a withdrawn cookie set on "/" was never expired."""
    client = client_with(make_client, make_config, cookie_paths=("/shop",))
    consent(client, "analytics", "marketing")
    client.cookies.set("_fbp", "x", domain="shop.test")
    response = consent(client, "analytics")
    paths = {
        h.split("Path=")[1].split(";")[0]
        for h in response.headers.get_list("set-cookie")
        if h.startswith("_fbp=")
    }
    assert paths == {"/", "/shop"} and "_fbp" not in client.cookies
