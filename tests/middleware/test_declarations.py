"""Declared services and cookies: parsing, matching, and mistakes named at start-up."""

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import SECRET

from koekje.middleware import Config, ConfigError, load_config
from koekje.middleware.declarations import _overlap, parse_duration

ENV = {"KOEKJE_SECRET_KEY": SECRET}

DECLARED = """
[consent.services.youtube]
category = "marketing"
provider = "Google Ireland Limited"
purpose = { nl = "Video's afspelen", en = "Plays videos" }

[consent.services.matomo]
category = "analytics"

[[consent.cookies]]
name = "_ga_*"
category = "analytics"
duration = "13 months"

[[consent.cookies]]
name = "_ga"
category = "analytics"
duration = "2 years"
party = "first"

[[consent.cookies]]
name = "VISITOR_INFO1_LIVE"
service = "youtube"
duration = "6 months"
party = "third"

[[consent.cookies]]
name = "session"
category = "necessary"
duration = "session"
"""


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "koekje.toml"
    path.write_text(text)
    return load_config(path, ENV)


def test_declarations_are_read_and_matched(tmp_path: Path) -> None:
    declarations = load(tmp_path, DECLARED).consent.declarations()
    assert declarations.services["youtube"].category == "marketing"
    assert declarations.rule("_ga_ABC123").name == "_ga_*"  # type: ignore[union-attr]
    assert declarations.rule("_ga").name == "_ga"  # type: ignore[union-attr]
    assert declarations.rule("_gat") is None
    youtube = declarations.rule("VISITOR_INFO1_LIVE")
    assert youtube is not None and youtube.category == "marketing" and youtube.service == "youtube"
    assert youtube.max_seconds == 6 * 31 * 86400 and youtube.party == "third"
    assert declarations.rule("session").max_seconds is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[consent.services.yt]\ncategory = "ads"\n',
            "consent.services.yt.category: 'ads' is not one of",
        ),
        (
            '[consent.services.Bad]\ncategory = "marketing"\n',
            "consent.services.Bad: a service id",
        ),
        (
            '[consent.services.analytics]\ncategory = "analytics"\n',
            "a service may not be named like a category",
        ),
        (
            '[[consent.cookies]]\nname = "x"\nservice = "nope"\nduration = "1 day"\n',
            "consent.cookies[0] ('x').service: no service 'nope'",
        ),
        (
            '[[consent.cookies]]\nname = "x"\nduration = "1 day"\n',
            "give either its service or its category",
        ),
        (
            '[[consent.cookies]]\nname = "x"\ncategory = "analytics"\nduration = "forever"\n',
            "duration 'forever'",
        ),
        (
            '[[consent.cookies]]\nname = "_ga*x"\ncategory = "analytics"\nduration = "1 day"\n',
            "consent.cookies[0] ('_ga*x').name: use the cookie's exact name",
        ),
        (
            '[[consent.cookies]]\nname = "a b"\ncategory = "analytics"\nduration = "1 day"\n',
            "('a b').name",
        ),
        (
            '[[consent.cookies]]\nname = "koekje_*"\ncategory = "analytics"\nduration = "1 day"\n',
            "koekje's own cookies",
        ),
        (
            '[[consent.cookies]]\nname = "_ga_*"\ncategory = "analytics"\nduration = "1 day"\n'
            '[[consent.cookies]]\nname = "_ga_X"\ncategory = "marketing"\nduration = "1 day"\n',
            "consent.cookies[0] ('_ga_*') and consent.cookies[1] ('_ga_X') can match the same cookie",
        ),
        (
            '[[consent.cookies]]\nname = "_pk"\ncategory = "analytics"\nduration = "1 day"\n'
            '[[consent.cookies]]\nname = "_pk"\ncategory = "analytics"\nduration = "1 day"\n',
            "can match the same cookie",
        ),
        ('[consent]\nenforce = "sometimes"\n', "at `$.consent.enforce`"),
        ('[consent]\ncookie_domains = ["exa mple.nl"]\n', "consent.cookie_domains: 'exa mple.nl'"),
        ('[consent]\ncookie_paths = ["shop"]\n', "consent.cookie_paths: 'shop'"),
        (
            '[consent.google_consent_mode]\ntypes = { ad_storage = "youtube" }\n',
            "consent.google_consent_mode.types.ad_storage: 'youtube' is no category or service",
        ),
        ('[consent.google_consent_mode]\ntypes = { ads = "marketing" }\n', "unknown ['ads']"),
    ],
)
def test_declaration_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("session", None),
        ("Session", None),
        ("1 second", 1),
        ("30 days", 30 * 86400),
        ("13 months", 13 * 31 * 86400),
        ("1 year", 366 * 86400),
        ("2years", 2 * 366 * 86400),
        ("1 week", 7 * 86400),
    ],
)
def test_durations(text: str, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


@given(st.text(max_size=30))
def test_duration_parser_accepts_only_its_forms(text: str) -> None:
    form = re.fullmatch(
        r"\s*(session|[0-9]{1,4}\s*(second|minute|hour|day|week|month|year)s?)\s*", text.lower()
    )
    zero = re.search(r"\b0+\s*[a-z]", text.lower()) is not None
    if form is None or zero:
        with pytest.raises(ValueError, match="write 'session' or a number and a unit"):
            parse_duration(text)
    else:
        seconds = parse_duration(text)
        assert seconds is None or seconds > 0


_names = st.text(alphabet="ab_", min_size=1, max_size=5)
_declarations = st.tuples(_names, st.booleans()).map(lambda d: d[0] + "*" if d[1] else d[0])


@given(_declarations, _declarations)
def test_overlap_means_some_cookie_matches_both(first: str, second: str) -> None:
    """Checked against brute force over every name these declarations could match."""

    def matches(declared: str, name: str) -> bool:
        return name.startswith(declared[:-1]) if declared.endswith("*") else name == declared

    candidates = {first.rstrip("*"), second.rstrip("*")}
    candidates |= {a + b for a in list(candidates) for b in ("", "a", "b", "_", "ab")}
    candidates |= {first.rstrip("*") + second.rstrip("*"), second.rstrip("*") + first.rstrip("*")}
    both = any(matches(first, name) and matches(second, name) for name in candidates)
    assert _overlap(first, second) == both
