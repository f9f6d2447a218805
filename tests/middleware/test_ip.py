import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koekje.middleware.ip import ClientAddress, Truncator

truncate = Truncator()


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("10.1.2.255", "10.1.2.0"),
        ("2001:db8:abcd:12:34:56:78:9a", "2001:db8:abcd::"),
        ("::ffff:198.51.100.9", "198.51.100.0"),
        ("fe80::1%eth0", "fe80::"),
        ("::1", "::"),
        ("2002:cb00:714d:1234::1", "2002:cb00:7100::"),  # 6to4 of 203.0.113.77
    ],
)
def test_truncates_to_the_default_prefixes(address: str, expected: str) -> None:
    assert truncate(address) == expected


@pytest.mark.parametrize(
    "address", ["", "testclient", "1.2.3", "1.2.3.4.5", "::g", "203.0.113.77 ", "300.1.1.1"]
)
def test_rejects_what_is_not_an_address(address: str) -> None:
    assert truncate(address) is None


def test_prefix_lengths_are_configurable() -> None:
    assert Truncator(16, 32)("203.0.113.77") == "203.0.0.0"
    assert Truncator(16, 32)("2001:db8:abcd:12::1") == "2001:db8::"
    with pytest.raises(ValueError, match="prefix"):
        Truncator(33, 48)


@given(st.ip_addresses(v=4))
def test_ipv4_keeps_exactly_the_first_24_bits(address: ipaddress.IPv4Address) -> None:
    result = ipaddress.IPv4Address(truncate(str(address)))
    assert int(result) == int(address) & 0xFFFFFF00


def _keep_first(bits: int, value: int) -> int:
    return value & (((1 << bits) - 1) << (128 - bits))


@given(st.ip_addresses(v=6) | st.ip_addresses(v=6, network="2002::/16"))
def test_ipv6_keeps_at_most_the_first_48_bits(address: ipaddress.IPv6Address) -> None:
    result = truncate(str(address))
    assert result is not None
    if address.ipv4_mapped is not None:
        assert int(ipaddress.IPv4Address(result)) == int(address.ipv4_mapped) & 0xFFFFFF00
    elif address.sixtofour is not None:
        # 6to4 carries a whole IPv4 address in bits 16-48: it is truncated like any IPv4 address.
        assert int(ipaddress.IPv6Address(result)) == _keep_first(40, int(address))
    else:
        assert int(ipaddress.IPv6Address(result)) == _keep_first(48, int(address))


@given(st.ip_addresses())
def test_truncation_is_idempotent(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    once = truncate(str(address))
    assert once is not None
    assert truncate(once) == once


@given(st.text(max_size=60))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    result = truncate(text)
    assert result is None or ipaddress.ip_address(result)


def _scope(peer: str, forwarded: str | None = None) -> dict[str, object]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"client": (peer, 1234), "headers": headers}


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert ClientAddress()(_scope("198.51.100.1", "203.0.113.5")) == "198.51.100.1"


def test_behind_a_trusted_proxy_the_nearest_untrusted_hop_is_the_client() -> None:
    address = ClientAddress(["10.0.0.0/8"])
    # The client may prepend anything; only the hop the proxy itself added is believed.
    assert address(_scope("10.0.0.2", "1.1.1.1, 203.0.113.5, 10.0.0.9")) == "203.0.113.5"
    assert address(_scope("10.0.0.2", "garbage")) is None
    assert address(_scope("10.0.0.2")) == "10.0.0.2"
    # A peer that is not a trusted proxy cannot claim another address.
    assert address(_scope("198.51.100.1", "203.0.113.5")) == "198.51.100.1"


def test_no_client_in_scope() -> None:
    assert ClientAddress()({"client": None, "headers": []}) is None
