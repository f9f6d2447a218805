"""The region table: which consent rules apply where."""

from pathlib import Path

import pytest
from support import SECRET

from koekje.middleware import ConfigError, load_config
from koekje.middleware.regions import EU_EEA_UK_CH, OPT_IN, OPT_OUT, US_OPT_OUT_STATES, RegionRules

DEFAULTS = RegionRules(OPT_IN, EU_EEA_UK_CH, US_OPT_OUT_STATES)


@pytest.mark.parametrize(
    ("region", "mode"),
    [
        ("NL", OPT_IN),
        ("GB", OPT_IN),
        ("CH", OPT_IN),
        ("NO", OPT_IN),
        ("US-CA", OPT_OUT),
        ("US-TX", OPT_OUT),
        ("US-RI", OPT_OUT),
        ("US-FL", OPT_IN),  # Florida's law covers only very large companies: the default applies
        ("US", OPT_IN),  # a country database knows no state: the default
        ("JP", OPT_IN),
        (None, OPT_IN),  # unknown: the strictest
    ],
)
def test_documented_defaults(region: str | None, mode: str) -> None:
    assert DEFAULTS.mode(region) == mode


def test_a_subdivision_falls_back_to_its_country() -> None:
    rules = RegionRules(OPT_IN, ["DE"], ["US"])
    assert rules.mode("DE-BY") == OPT_IN
    assert rules.mode("US-ID") == OPT_OUT


def test_unknown_stays_opt_in_even_when_the_default_is_opt_out() -> None:
    rules = RegionRules(OPT_OUT, EU_EEA_UK_CH, ())
    assert rules.mode("JP") == OPT_OUT
    assert rules.mode(None) == OPT_IN
    assert rules.mode("FR") == OPT_IN


def test_the_table_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "koekje.toml"
    path.write_text('[consent.regions]\nopt_out = ["US", "CA-QC"]\nopt_out_defaults = []\n')
    rules = load_config(path, {"KOEKJE_SECRET_KEY": SECRET}).consent.region_rules()
    assert rules.mode("US-WY") == OPT_OUT and rules.mode("US-CA") == OPT_OUT


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[consent.regions]\nopt_in = ["Netherlands"]\n', "consent.regions.opt_in: 'Netherlands' is not"),
        ('[consent.regions]\nopt_in = ["NL"]\nopt_out = ["NL"]\n', "['NL'] are listed both"),
        ('[consent.regions]\nopt_out_defaults = ["tracking"]\n', "opt_out_defaults: ['tracking']"),
        ('[consent.regions]\ndefault = "maybe"\n', "at `$.consent.regions.default`"),
    ],
)
def test_region_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "koekje.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path, {"KOEKJE_SECRET_KEY": SECRET})
    assert message in str(error.value)
