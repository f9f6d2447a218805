"""Which consent applies: the visitor's decision, their region's rules, and Global Privacy Control; implicit
decisions recorded once. GeoIP from a City-style database built for the test."""

from collections.abc import Callable
from pathlib import Path

import msgspec
import netaddr
import pytest
from mmdb_writer import MMDBWriter
from starlette.testclient import TestClient
from support import consent, cookie_from, ledger, page_views, runtime_of, set_cookie_names

from koekje.middleware import Config
from koekje.middleware.config import ConsentSection, CookieSection, GeoSection, RegionSection

MakeClient = Callable[..., TestClient]
NL, CALIFORNIA, US, NOWHERE = "203.0.113.77", "198.51.100.7", "192.0.2.9", "100.64.0.1"
GPC = {"sec-gpc": "1"}


@pytest.fixture(scope="module")
def city_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    writer.insert_network(netaddr.IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "NL"}})
    writer.insert_network(
        netaddr.IPSet(["198.51.100.0/24"]),
        {"country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "CA"}]},
    )
    writer.insert_network(netaddr.IPSet(["192.0.2.0/24"]), {"country": {"iso_code": "US"}})
    path = tmp_path_factory.mktemp("geo") / "city.mmdb"
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def regional(make_config: Callable[..., Config], city_db: Path) -> Config:
    return make_config(
        geo=GeoSection(database=str(city_db)),
        consent=ConsentSection(
            cookies=(CookieSection(name="_fbp", category="marketing", duration="3 months"),),
        ),
    )


def test_config_json_reports_the_mode_of_the_region(make_client: MakeClient, regional: Config) -> None:
    for address, region, mode in [
        (NL, "NL", "opt-in"),
        (CALIFORNIA, "US-CA", "opt-out"),
        (US, "US", "opt-in"),  # a state the database does not know: the default
        (NOWHERE, None, "opt-in"),  # not in the database: unknown, the strictest
    ]:
        body = make_client(regional, client_ip=address).get("/_koekje/config.json").json()
        assert (body["region"], body["mode"]) == (region, mode)


def test_without_a_database_everyone_is_opt_in(make_client: MakeClient) -> None:
    client = make_client(client_ip=CALIFORNIA)
    assert client.get("/_koekje/config.json").json()["mode"] == "opt-in"
    assert set_cookie_names(client.get("/")) == []


def test_opt_out_defaults_are_recorded_once_with_the_first_page(
    make_client: MakeClient, regional: Config
) -> None:
    client = make_client(regional, client_ip=CALIFORNIA)
    first = client.get("/implantologie")
    assert set_cookie_names(first) == ["koekje_visit", "koekje_consent"]
    assert first.headers["cache-control"] == "private, no-store"
    client.get("/cursussen")
    [row] = ledger(client)
    assert row["method"] == "default" and row["categories"] == ["analytics", "necessary"]
    assert row["country"] == "US" and row["ip_prefix"] == "198.51.100.0"
    views = page_views(client)
    assert sorted(v["path"] for v in views) == ["/cursussen", "/implantologie"]
    assert {v["visitor_id"] for v in views} == {row["visitor_id"]}
    body = client.get("/_koekje/config.json").json()
    assert body["consent"]["method"] == "default" and body["consent"]["decided"] is False  # still asked


def test_opt_in_without_a_signal_records_nothing(make_client: MakeClient, regional: Config) -> None:
    client = make_client(regional, client_ip=NL)
    assert set_cookie_names(client.get("/")) == []
    assert ledger(client) == [] and page_views(client) == []


def test_gpc_is_a_refusal_recorded_once(make_client: MakeClient, regional: Config) -> None:
    client = make_client(regional, client_ip=NL)
    assert set_cookie_names(client.get("/", headers=GPC)) == ["koekje_consent"]
    client.get("/cursussen", headers=GPC)
    [row] = ledger(client)
    assert row["method"] == "gpc" and row["categories"] == ["necessary"] and row["gpc"] is True
    assert page_views(client) == []
    assert client.get("/_koekje/config.json", headers=GPC).json()["consent"]["decided"] is False


def test_gpc_in_an_opt_out_region_keeps_statistics_only(make_client: MakeClient, regional: Config) -> None:
    client = make_client(regional, client_ip=CALIFORNIA)
    client.get("/implantologie", headers=GPC)
    [row] = ledger(client)
    assert row["method"] == "gpc" and row["categories"] == ["analytics", "necessary"]
    assert len(page_views(client)) == 1
    assert "_fbp" not in set_cookie_names(client.get("/cookies?set=_fbp%3D1", headers=GPC))


def test_an_explicit_grant_under_gpc_wins(make_client: MakeClient, regional: Config) -> None:
    client = make_client(regional, client_ip=NL)
    client.get("/", headers=GPC)
    response = client.post("/_koekje/consent", json={"categories": ["marketing"]}, headers=GPC)
    assert response.status_code == 200
    assert set_cookie_names(client.get("/cookies?set=_fbp%3D1", headers=GPC)) == ["_fbp"]
    assert [r["method"] for r in ledger(client)] == ["gpc", "banner"]


def test_gpc_arriving_later_narrows_a_choice_once(make_client: MakeClient, regional: Config) -> None:
    client = make_client(regional, client_ip=NL)
    given = consent(client, "analytics", "marketing").json()["consent"]
    narrowed = client.get("/cookies?set=_fbp%3D1", headers=GPC)
    # _fbp removed, the narrower decision set (the visit goes on: analytics is still granted)
    assert set_cookie_names(narrowed) == ["koekje_visit", "koekje_consent"]
    client.get("/", headers=GPC)
    rows = ledger(client)
    assert [r["method"] for r in rows] == ["banner", "gpc"]
    assert rows[1]["previous_id"].hex == given["id"] and rows[1]["categories"] == ["analytics", "necessary"]
    assert rows[1]["visitor_id"] == rows[0]["visitor_id"]  # the same visitor, still counted
    body = client.get("/_koekje/config.json", headers=GPC).json()
    assert body["consent"]["decided"] is True  # they chose once: the banner does not come back
    assert len(page_views(client)) == 2


def test_dnt_counts_only_when_configured(
    make_client: MakeClient, make_config: Callable[..., Config], regional: Config
) -> None:
    assert set_cookie_names(make_client(regional, client_ip=NL).get("/", headers={"dnt": "1"})) == []
    honoring = msgspec.structs.replace(regional, consent=ConsentSection(honor_dnt=True))
    client = make_client(honoring, client_ip=NL)
    assert set_cookie_names(client.get("/", headers={"dnt": "1"})) == ["koekje_consent"]
    assert [r["method"] for r in ledger(client)] == ["gpc"]


def test_a_cookieless_flood_cannot_fill_the_ledger(make_client: MakeClient, regional: Config) -> None:
    config = msgspec.structs.replace(
        regional, consent=ConsentSection(decisions_per_minute=5, regions=RegionSection())
    )
    client = make_client(config, client_ip=CALIFORNIA)
    for _ in range(40):
        client.cookies.clear()
        client.get("/implantologie")
    assert len(ledger(client)) == 5
    assert len(page_views(client)) == 5  # the rest had no recorded decision behind them: not counted
    assert runtime_of(client).engine.counts["decision_flood"] == 35


def test_the_geoip_cache_holds_prefixes_never_addresses(make_client: MakeClient, regional: Config) -> None:
    client = make_client(regional, client_ip=CALIFORNIA)
    client.get("/_koekje/config.json")
    assert set(runtime_of(client).geo._cache) == {"198.51.100.0"}


def test_the_implicit_cookie_is_the_consent_cookie(make_client: MakeClient, regional: Config) -> None:
    client = make_client(regional, client_ip=CALIFORNIA)
    value = cookie_from(client.get("/"), "koekje_consent")
    decided = runtime_of(client).engine.codec.loads(value)
    assert decided is not None and decided.visitor_id is not None and not decided.decided


def test_the_same_choice_made_again_under_gpc_is_a_new_explicit_grant(
    make_client: MakeClient, regional: Config
) -> None:
    client = make_client(regional, client_ip=NL)
    consent(client, "marketing")
    again = client.post("/_koekje/consent", json={"categories": ["marketing"]}, headers=GPC)
    assert set_cookie_names(again) == ["koekje_consent"]
    assert set_cookie_names(client.get("/cookies?set=_fbp%3D1", headers=GPC)) == ["_fbp"]
    assert [(r["method"], r["gpc"]) for r in ledger(client)] == [("banner", False), ("banner", True)]


def test_the_same_choice_again_costs_no_row(make_client: MakeClient, regional: Config) -> None:
    client = make_client(regional, client_ip=NL)
    first = consent(client, "analytics").json()["consent"]
    for _ in range(5):
        again = consent(client, "analytics")
        assert again.json()["consent"]["id"] == first["id"] and set_cookie_names(again) == []
    assert len(ledger(client)) == 1
    assert runtime_of(client).engine.counts["decision_repeated"] == 5


def test_an_implied_decision_goes_out_only_with_a_recorded_page(
    make_client: MakeClient, regional: Config
) -> None:
    """Found by trying: JSON, 404 or HEAD responses used to carry an implied consent cookie whose decision
    was never recorded, and page views were then counted under it."""
    client = make_client(regional, client_ip=CALIFORNIA)
    for _ in range(3):
        assert set_cookie_names(client.get("/api")) == []
        assert set_cookie_names(client.get("/missing")) == []
        assert set_cookie_names(client.head("/")) == []
    assert ledger(client) == [] and page_views(client) == []
    assert set_cookie_names(client.get("/")) == ["koekje_visit", "koekje_consent"]
    [row] = ledger(client)
    assert [v["visitor_id"] for v in page_views(client)] == [row["visitor_id"]]


def test_a_gpc_narrowing_applies_on_any_response_but_is_recorded_with_a_page(
    make_client: MakeClient, regional: Config
) -> None:
    client = make_client(regional, client_ip=NL)
    consent(client, "marketing")
    assert set_cookie_names(client.get("/api", headers=GPC)) == []  # no cookie, no row
    assert "_fbp" not in set_cookie_names(client.get("/cookies?set=_fbp%3D1", headers=GPC))
    assert [r["method"] for r in ledger(client)] == ["banner", "gpc"]  # the page recorded it


def test_a_gpc_narrowing_is_recorded_when_the_network_budget_is_spent(
    make_client: MakeClient, regional: Config
) -> None:
    """A narrowing needs an earlier, budgeted grant, so it costs nothing: a network that used up its
    decisions still has its browsers' GPC signals recorded and applied."""
    config = msgspec.structs.replace(
        regional, consent=msgspec.structs.replace(regional.consent, decisions_per_minute=1)
    )
    client = make_client(config, client_ip=NL)
    consent(client, "analytics", "marketing")
    assert "_fbp" not in set_cookie_names(client.get("/cookies?set=_fbp%3D1", headers=GPC))
    assert [r["method"] for r in ledger(client)] == ["banner", "gpc"]
