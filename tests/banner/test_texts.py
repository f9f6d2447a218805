import pytest
from hypothesis import given
from hypothesis import strategies as st

from koekje.banner import asset, available_languages, negotiate, texts
from koekje.middleware.config import KNOWN_CATEGORIES

OFFERED = ("nl", "en")


def test_every_language_has_every_text() -> None:
    reference = texts("en")
    for lang in available_languages():
        words = texts(lang)
        assert words.keys() == reference.keys(), lang
        assert set(words["categories"]) == {"necessary", *KNOWN_CATEGORIES}, lang
        assert all(isinstance(v, str) and v for k, v in words.items() if k != "categories"), lang


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
