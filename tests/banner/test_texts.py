import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient
from support import runtime_of

from koekje.banner import asset, available_languages, check_overrides, merged, negotiate, texts
from koekje.middleware import Config
from koekje.middleware.config import KNOWN_CATEGORIES, BannerSection
from koekje.middleware.shown import BannerContent, localized

MakeClient = Callable[..., TestClient]

OFFERED = ("nl", "en")


def test_every_language_has_every_text() -> None:
    reference = texts("en")
    for lang in available_languages():
        words = texts(lang)
        assert words.keys() == reference.keys(), lang
        assert set(words["categories"]) == {"necessary", *KNOWN_CATEGORIES}, lang
        assert all(isinstance(v, str) and v for k, v in words.items() if k not in ("categories", "durations"))
        assert words["durations"].keys() == reference["durations"].keys(), lang


def test_unknown_language_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="available"):
        texts("xx")


@pytest.mark.parametrize(
    ("requested", "header", "expected"),
    [
        ("en", "nl", "en"),
        ("en-GB", None, "en"),
        (None, "de-DE,de;q=0.9,en;q=0.8", "en"),
        (None, "en;q=0.2, nl;q=0.9", "nl"),
        (None, "fr, de", "nl"),
        ("xx", "en;q=abc, en-US;q=0.5", "en"),
        (None, "en;q=0", "nl"),
        (None, None, "nl"),
    ],
)
def test_negotiation(requested: str | None, header: str | None, expected: str) -> None:
    assert negotiate(requested, header, OFFERED) == expected


@given(st.text(max_size=100) | st.none(), st.text(max_size=600) | st.none())
def test_negotiation_always_answers_an_offered_language(requested: str | None, header: str | None) -> None:
    assert negotiate(requested, header, OFFERED) in OFFERED


def test_assets_carry_a_content_version() -> None:
    js = asset("banner.js")
    assert js.body.startswith(b"/*! koekje") and len(js.version) == 16
    with pytest.raises(KeyError):
        asset("../../etc/passwd")


def test_german_and_french_are_complete_and_not_english() -> None:
    assert {"nl", "en", "de", "fr"} <= available_languages()
    english = texts("en")
    for lang in ("de", "fr"):
        words = texts(lang)
        assert all(words[key] != english[key] for key in ("title", "body", "accept_all", "reject_all"))
    assert "\u00a0:" in texts("fr")["categories"]["necessary"]["description"]  # French spacing


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"titel": "x"}, "banner.texts.nl.titel: no such text"),
        ({"title": ""}, "banner.texts.nl.title: give a non-empty text"),
        ({"title": 3}, "banner.texts.nl.title: give a non-empty text"),
        ({"placeholder": "Externe inhoud"}, "banner.texts.nl.placeholder: the text must say {service}"),
        ({"categories": {"ads": {"title": "x"}}}, "banner.texts.nl.categories.ads"),
        ({"categories": {"analytics": {"tekst": "x"}}}, "banner.texts.nl.categories.analytics.tekst"),
    ],
)
def test_a_wrong_override_names_its_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_overrides("nl", overrides)


def test_overrides_change_only_what_they_name() -> None:
    words = merged(
        "nl", {"title": "Cookies bij Tandwerk", "categories": {"analytics": {"title": "Bezoekcijfers"}}}
    )
    base = texts("nl")
    assert words["title"] == "Cookies bij Tandwerk" and words["body"] == base["body"]
    assert words["categories"]["analytics"] == {**base["categories"]["analytics"], "title": "Bezoekcijfers"}
    assert base["title"] != "Cookies bij Tandwerk"  # the built-in texts are not changed
    assert merged("nl", None) is base


def test_the_site_wording_is_shown_and_proven(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    banner = BannerSection(
        languages=("nl", "en", "de", "fr"),
        texts={"nl": {"title": "Cookies bij Tandwerk", "visit_cookie": "Houdt uw bezoek bij."}},
    )
    client = make_client(make_config(banner=banner))
    body = client.get("/_koekje/config.json?lang=nl").json()
    assert body["texts"]["title"] == "Cookies bij Tandwerk"
    analytics = next(c for c in body["categories"] if c["id"] == "analytics")
    assert analytics["cookies"][0]["purpose"] == "Houdt uw bezoek bij."
    assert (
        client.get("/_koekje/config.json", headers={"accept-language": "fr-BE, en;q=0.5"}).json()["lang"]
        == "fr"
    )
    assert client.get("/_koekje/config.json?lang=de").json()["texts"]["accept_all"] == "Alle akzeptieren"
    content = runtime_of(client).content
    assert content.hash("nl") != BannerContent(
        runtime_of(client).declarations,
        languages=banner.languages,
        categories=make_config().consent.categories,
        policy_revision=1,
        privacy_url=None,
        consent_cookie="koekje_consent",
        consent_days=365,
    ).hash("nl")  # the proof of a decision names the wording the visitor read


def test_an_override_for_a_language_not_offered_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"banner.texts.de: not one of banner.languages"):
        BannerSection(texts={"de": {"title": "x"}})


@pytest.mark.parametrize(
    ("declared", "lang", "shown"),
    [
        ("13 months", "nl", "13 maanden"),
        ("1 month", "de", "1 Monat"),
        ("30 Days", "fr", "30 jours"),
        ("session", "de", "bis Sie den Browser schließen"),
        ("2 years", "en", "2 years"),
    ],
)
def test_lifetimes_are_shown_in_the_visitors_language(declared: str, lang: str, shown: str) -> None:
    assert localized(declared, texts(lang)["durations"]) == shown


def test_koekje_s_own_cookies_speak_german_too(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    """Found by trying: the Dutch banner said "365 days" and "30 minutes"."""
    client = make_client(make_config(banner=BannerSection(languages=("nl", "de"))))
    body = client.get("/_koekje/config.json?lang=de").json()
    by_id = {category["id"]: category for category in body["categories"]}
    assert by_id["necessary"]["cookies"][0]["duration"] == "365 Tage"
    assert by_id["analytics"]["cookies"][0]["duration"] == "30 Minuten"
    assert "durations" not in body["texts"]
