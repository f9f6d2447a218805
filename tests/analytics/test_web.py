"""The same-origin check that guards every POST (consent, dashboard login)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from koekje.analytics.web import is_same_origin


def headers(**values: str) -> Headers:
    return Headers({name.replace("_", "-"): value for name, value in values.items()})


@pytest.mark.parametrize(
    ("origin", "scheme", "same"),
    [
        ("http://shop.test", "http", True),
        ("http://shop.test:80", "http", True),  # the default port, spelled out
        ("HTTP://Shop.Test", "http", True),
        ("https://shop.test", "https", True),
        ("https://shop.test", "http", False),  # another scheme is another origin
        ("http://shop.test", "https", False),
        ("evil://shop.test", "http", False),  # the scheme is compared, not skipped
        ("http://shop.test:8080", "http", False),
        ("http://evil.test", "http", False),
        ("http://shop.test.evil.test", "http", False),
        ("http://user@shop.test", "http", False),
        ("http://shop.test/path", "http", False),
        ("null", "http", False),
        ("", "http", False),
        ("http://[::1", "http", False),
    ],
)
def test_origin_is_compared_by_scheme_host_and_port(origin: str, scheme: str, same: bool) -> None:
    assert is_same_origin(headers(origin=origin, host="shop.test"), scheme) is same


def test_a_non_default_port_must_match_the_host_header() -> None:
    assert is_same_origin(headers(origin="http://shop.test:8080", host="shop.test:8080"), "http")
    assert not is_same_origin(headers(origin="http://shop.test", host="shop.test:8080"), "http")


def test_sec_fetch_site_decides_when_present() -> None:
    assert is_same_origin(headers(sec_fetch_site="same-origin", origin="https://proxy.example"), "http")
    assert not is_same_origin(headers(sec_fetch_site="same-site", origin="http://shop.test"), "http")
    assert not is_same_origin(headers(sec_fetch_site="cross-site", host="shop.test"), "http")


def test_a_request_without_origin_is_no_browsers_cross_site_request() -> None:
    assert is_same_origin(headers(host="shop.test"), "http")


@given(st.text(max_size=60), st.sampled_from(["http", "https"]))
def test_never_raises(origin: str, scheme: str) -> None:
    raw = [(b"origin", origin.encode("utf-8", "replace")), (b"host", b"x")]
    assert is_same_origin(Headers(raw=raw), scheme) in (True, False)
