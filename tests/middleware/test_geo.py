"""GeoIP with small MaxMind-format databases built for the test (no GeoLite2 data is downloadable here)."""

from collections.abc import Callable
from pathlib import Path

import msgspec
import netaddr
import pytest
from mmdb_writer import MMDBWriter
from starlette.testclient import TestClient
from support import consent, page_views

from koekje.middleware import Config
from koekje.middleware.config import GeoSection
from koekje.middleware.geo import GeoLookup


@pytest.fixture(scope="module")
def country_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True)
    writer.insert_network(netaddr.IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "NL"}})
    writer.insert_network(netaddr.IPSet(["2001:db8::/32"]), {"registered_country": {"iso_code": "BE"}})
    writer.insert_network(netaddr.IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "<script>"}})
    path = tmp_path_factory.mktemp("geo") / "country.mmdb"
    writer.to_db_file(str(path))
    return path


def test_country_lookup(country_db: Path) -> None:
    geo = GeoLookup(country_db)
    geo.open()
    assert geo.country("203.0.113.77") == "NL"
    assert geo.country("2001:db8::1") == "BE"  # registered country when there is no country
    assert geo.country("192.0.2.1") is None  # not in the database: unknown
    assert geo.country("198.51.100.1") is None  # a malformed record is unknown, not stored raw
    assert geo.country("not an address") is None
    assert geo.country(None) is None
    geo.close()


def test_without_a_database_every_region_is_unknown() -> None:
    assert GeoLookup(None).country("203.0.113.77") is None


def test_an_unreadable_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.mmdb").write_bytes(b"not a database")
    with pytest.raises(ValueError, match="cannot be read as a GeoIP database"):
        GeoLookup(tmp_path / "bad.mmdb").open()


def test_region_reaches_the_banner_and_the_page_views(
    make_client: Callable[..., TestClient], make_config: Callable[..., Config], country_db: Path
) -> None:
    config = msgspec.structs.replace(make_config(), geo=GeoSection(database=str(country_db)))
    client = make_client(config)
    assert client.get("/_koekje/config.json").json()["region"] == "NL"
    consent(client, "analytics")
    client.get("/implantologie")
    [view] = page_views(client)
    assert view["country"] == "NL" and view["ip_prefix"] == "203.0.113.0"
