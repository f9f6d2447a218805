from importlib.resources import as_file, files
from pathlib import Path

import pytest
from support import SECRET

from koekje.middleware import Config, ConfigError, load_config
from koekje.middleware.config import AnalyticsSection, ConsentSection, GeoSection, SiteSection

ENV = {"KOEKJE_SECRET_KEY": SECRET}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "koekje.toml"
    path.write_text(text)
    return path


def test_defaults_with_a_secret(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), ENV)
    assert config.secret_keys == (SECRET,)
    assert config.site.prefix == "/_koekje"
    assert config.consent.cookie == "koekje_consent" and config.consent.visitor_cookie == "koekje_vid"
    # The embedded store lives next to the file by default.
    assert config.store_settings().dsn == f"chdb://{tmp_path.resolve() / 'koekje-data'}"
    assert config.store_settings().raw_retention_days == 730


def test_the_demo_configuration_is_valid() -> None:
    with as_file(files("koekje.demo").joinpath("koekje.toml")) as path:
        config = load_config(path, ENV)
    assert "implantologie" in config.analytics.topics
    assert config.banner.privacy_url == "/privacy"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[site]\nprefx = '/x'\n", "unknown field `prefx` - at `$.site`"),
        ("[consent]\nmax_age_days = 'year'\n", "Expected `int`, got `str` - at `$.consent.max_age_days`"),
        ("[consent]\nmax_age_days = 800\n", "13 months"),
        ("[consent]\ncategories = ['analytics', 'tracking']\n", "unknown ['tracking']"),
        ("[banner]\nlanguages = ['fy']\n", "not for ['fy']"),
        ("[analytics]\ndatabase = 'x; DROP'\n", "plain identifier"),
        ("[analytics]\nraw_retention_days = 0\n", "between 1 and 3650"),
        ("[analytics]\nload_interval_seconds = 0\n", "load_interval_seconds must be between 0.01 and 60"),
        ("[analytics]\nspool_max_mb = 0\n", "spool_max_mb must be at least 1"),
        ("[analytics.topics]\nImplants = ['/x']\n", "not a topic name"),
        ("[analytics.topics]\nimplants = ['x']\n", "must start with '/'"),
        ("[geo]\nipv4_prefix = 32\n", "at least the last byte"),
        ("[site]\ntrusted_proxies = ['proxy']\n", "not an IP network"),
        ("[site]\nprefix = '/..'\n", "site.prefix must look like"),
        ("[consent]\ncookie = '__Host-consent'\n", "leave out the prefix"),
        ("[consent]\ncookie_domains = ['com']\n", "consent.cookie_domains: 'com'"),
        ("[banner]\nprivacy_url = 'javascript:alert(1)'\n", "banner.privacy_url 'javascript:alert(1)'"),
        ("[banner]\nprivacy_url = '//evil.test/x'\n", "give a path on this site"),
        ("[dashboard]\nmin_visitors = 0\n", "at least 1"),
        ("secret_keys = ['abc']\n", "do not put secret keys in the file"),
        ("[site\n", "not valid TOML"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text), ENV)
    assert message in str(error.value)


def test_missing_secret_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"KOEKJE_SECRET_KEY.*secrets\.token_urlsafe"):
        load_config(write(tmp_path, ""), {})
    with pytest.raises(ConfigError, match="at least 32"):
        load_config(write(tmp_path, ""), {"KOEKJE_SECRET_KEY": "short"})


def test_the_declarations_can_be_read_without_the_secrets(tmp_path: Path) -> None:
    """For `koekje audit`, run where the site's secrets are not (a CI job, a laptop)."""
    path = write(
        tmp_path, "[[consent.cookies]]\nname = '_fbp'\ncategory = 'marketing'\nduration = '3 months'\n"
    )
    config = load_config(path, {}, validate=False)
    assert config.secret_keys == ()
    assert config.declarations().rule("_fbp") is not None
    # The file itself is still checked key by key.
    broken = write(tmp_path, "[[consent.cookies]]\nname = 'x'\ncategory = 'marketing'\nduration = 'x'\n")
    with pytest.raises(ConfigError, match="duration"):
        load_config(broken, {}, validate=False)


def test_secret_rotation_list_newest_last(tmp_path: Path) -> None:
    newer = "newer-secret-key-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    config = load_config(write(tmp_path, ""), {"KOEKJE_SECRET_KEY": f"{SECRET}, {newer}"})
    assert config.secret_keys == (SECRET, newer)
    with pytest.raises(ConfigError, match="repeats a few characters"):
        load_config(write(tmp_path, ""), {"KOEKJE_SECRET_KEY": "n" * 40})


def test_dsn_from_the_environment_wins(tmp_path: Path) -> None:
    text = "[analytics]\ndsn = 'https://koekje@clickhouse.internal:8443'\n"
    config = load_config(write(tmp_path, text), {**ENV, "KOEKJE_CLICKHOUSE_DSN": "https://u:pw@ch:8443"})
    assert config.store_settings().dsn == "https://u:pw@ch:8443"
    assert not config.store_settings().embedded


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", "[analytics]\ndata_dir = '../data'\n[geo]\ndatabase = 'geo.mmdb'\n")
    config = load_config(path, ENV)
    assert config.store_settings().dsn == f"chdb://{tmp_path.resolve() / 'data'}"
    assert config.geo_database() == tmp_path.resolve() / "conf" / "geo.mmdb"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", ENV)


def test_sections_validate_when_built_in_code() -> None:
    with pytest.raises(ValueError, match=r"site\.prefix"):
        SiteSection(prefix="no-slash")
    with pytest.raises(ValueError, match="must differ"):
        ConsentSection(cookie="same", visitor_cookie="same")
    with pytest.raises(ValueError, match="ipv6_prefix"):
        GeoSection(ipv6_prefix=64)
    with pytest.raises(ConfigError, match="no secret key"):
        Config(analytics=AnalyticsSection(dsn="chdb:///tmp/x")).validate()
