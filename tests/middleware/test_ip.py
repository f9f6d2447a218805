import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koekje.middleware.ip import Proxies, Truncator

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


# Text that is nearly a dotted quad: leading zeros, spaces, short or long forms, other digits.
_near_v4 = st.lists(
    st.text(alphabet="0123456789 x\u0661", min_size=0, max_size=4), min_size=3, max_size=5
).map(".".join)


@given(_near_v4 | st.ip_addresses(v=4).map(str))
def test_ipv4_text_is_kept_only_in_canonical_form(text: str) -> None:
    # The /24 prefix is cut from the text itself: only what the address parser takes as canonical passes,
    # and then the text prefix equals the bits' one; anything else is no address at all.
    result = truncate(text)
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        assert result is None
        return
    assert result is not None and result == str(ipaddress.IPv4Address(int(address) & 0xFFFFFF00))


@given(st.text(max_size=60))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    result = truncate(text)
    assert result is None or ipaddress.ip_address(result)


def _scope(
    peer: str, forwarded: str | None = None, header: str = "x-forwarded-for", **more: str
) -> dict[str, object]:
    headers = [(header.encode(), forwarded.encode())] if forwarded is not None else []
    headers += [(name.replace("_", "-").encode(), value.encode()) for name, value in more.items()]
    return {"client": (peer, 1234), "headers": headers, "scheme": "http"}


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert Proxies().client(_scope("198.51.100.1", "203.0.113.5")) == "198.51.100.1"


def test_behind_a_trusted_proxy_the_nearest_untrusted_hop_is_the_client() -> None:
    proxies = Proxies(["10.0.0.0/8"])
    # The client may prepend anything; only the hop the proxy itself added is believed.
    assert proxies.client(_scope("10.0.0.2", "1.1.1.1, 203.0.113.5, 10.0.0.9")) == "203.0.113.5"
    assert proxies.client(_scope("10.0.0.2", "garbage")) is None
    assert proxies.client(_scope("10.0.0.2")) == "10.0.0.2"
    # A peer that is not a trusted proxy cannot claim another address.
    assert proxies.client(_scope("198.51.100.1", "203.0.113.5")) == "198.51.100.1"


@pytest.mark.parametrize(
    ("hop", "client"),
    [
        ("203.0.113.7:54321", "203.0.113.7"),  # nginx's $remote_addr:$remote_port, HAProxy
        ("[2001:db8::1]:80", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ('"203.0.113.7"', "203.0.113.7"),
        ("203.0.113.7:", None),
        ("[2001:db8::1]:x", None),
        ("203.0.113.7:54321:1", None),
        ("unknown", None),
    ],
)
def test_the_address_forms_proxies_send(hop: str, client: str | None) -> None:
    assert Proxies(["10.0.0.0/8"]).client(_scope("10.0.0.2", hop)) == client


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("for=192.0.2.60;proto=http;by=10.0.0.1", "192.0.2.60"),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ("for=198.51.100.1, for=192.0.2.43", "192.0.2.43"),
        ('For="203.0.113.9:1234";Proto=https', "203.0.113.9"),
        ("for=192.0.2.43, for=10.0.0.3", "192.0.2.43"),
        ("for=unknown", None),
        ("for=_hidden", None),
        ("proto=https", None),  # the proxy did not say whom it forwarded for: no address
    ],
)
def test_rfc_7239_forwarded(forwarded: str, client: str | None) -> None:
    proxies = Proxies(["10.0.0.0/8"], header="forwarded")
    assert proxies.client(_scope("10.0.0.2", forwarded, header="forwarded")) == client


def test_only_the_configured_header_is_read() -> None:
    """A proxy appends to one header and passes the other through: reading both would let a client pick
    its address."""
    spoofed = _scope("10.0.0.2", "for=198.51.100.66", header="forwarded", x_forwarded_for="203.0.113.5")
    assert Proxies(["10.0.0.0/8"]).client(spoofed) == "203.0.113.5"
    scope = _scope("10.0.0.2", "for=203.0.113.5", header="forwarded", x_forwarded_for="198.51.100.66")
    assert Proxies(["10.0.0.0/8"], header="forwarded").client(scope) == "203.0.113.5"


def test_an_address_the_server_took_from_x_forwarded_for_is_not_believed_when_proxies_write_forwarded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by a helper: uvicorn replaces the peer from X-Forwarded-For (for 127.0.0.1, by default) before
    koekje sees it; a proxy that writes Forwarded passes the visitor's X-Forwarded-For through, so the
    visitor chose their stored address. Such a request has no address, and the fix is said once."""
    proxies = Proxies(["127.0.0.1/32"], header="forwarded")
    rewritten = _scope("203.0.113.77", "for=198.51.100.9", header="forwarded", x_forwarded_for="203.0.113.77")
    for _ in range(2):
        assert proxies.client(rewritten) is None
    said = [r.getMessage() for r in caplog.records if "--forwarded-allow-ips" in r.getMessage()]
    assert len(said) == 1
    # The visitor's own forms of it are taken as uvicorn takes them (a port, brackets), and trusted hops
    # that pad the header do not hide it (found by a review).
    for chosen in ("203.0.113.77:1", "[203.0.113.77]", "203.0.113.77, " + "127.0.0.1, " * 500 + "127.0.0.1"):
        forged = _scope("203.0.113.77", "for=198.51.100.9", header="forwarded", x_forwarded_for=chosen)
        assert proxies.client(forged) is None, chosen
    # A proxy that writes both headers names the same visitor in each: the address stands (found by a
    # review: every such request had lost it).
    both = _scope("198.51.100.9", "for=198.51.100.9", header="forwarded", x_forwarded_for="198.51.100.9")
    assert proxies.client(both) == "198.51.100.9"
    # Not rewritten: a visitor reaching the site directly, or the proxy's own peer address.
    assert proxies.client(_scope("203.0.113.77", x_forwarded_for="192.0.2.1")) == "203.0.113.77"
    direct = _scope("127.0.0.1", "for=198.51.100.9", header="forwarded", x_forwarded_for="203.0.113.77")
    assert proxies.client(direct) == "198.51.100.9"
    assert Proxies(["127.0.0.1/32"]).client(rewritten) == "203.0.113.77"  # X-Forwarded-For is the header


def test_the_scheme_comes_from_a_trusted_proxy_only() -> None:
    assert Proxies(["10.0.0.0/8"]).scheme(_scope("10.0.0.2", x_forwarded_proto="https")) == "https"
    assert Proxies(["10.0.0.0/8"]).scheme(_scope("10.0.0.2", x_forwarded_proto="gopher")) == "http"
    assert Proxies(["10.0.0.0/8"]).scheme(_scope("198.51.100.1", x_forwarded_proto="https")) == "http"
    assert Proxies().scheme(_scope("10.0.0.2", x_forwarded_proto="https")) == "http"
    forwarded = Proxies(["10.0.0.0/8"], header="forwarded")
    assert forwarded.scheme(_scope("10.0.0.2", "for=1.2.3.4;proto=https", header="forwarded")) == "https"


def test_no_client_in_scope() -> None:
    assert Proxies().client({"client": None, "headers": []}) is None


def _hop(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int | None, style: str) -> str:
    text = str(address)
    if address.version == 6 and (port is not None or style == "bracketed"):
        text = f"[{text}]"
    return f"{text}:{port}" if port is not None else text


@given(
    client=st.ip_addresses(),
    port=st.none() | st.integers(0, 65535),
    style=st.sampled_from(["plain", "bracketed"]),
    junk=st.lists(st.text(max_size=30).filter(lambda t: "," not in t), max_size=4),
    forwarded=st.booleans(),
)
def test_the_client_is_found_behind_any_junk_it_prepends(
    client: ipaddress.IPv4Address | ipaddress.IPv6Address,
    port: int | None,
    style: str,
    junk: list[str],
    forwarded: bool,
) -> None:
    """Whatever the client puts in front, the hop our proxy wrote is the one found, in either header."""
    hop = _hop(client, port, style)
    if forwarded:
        value = ", ".join([*(f"for={j!r}".replace("'", '"') for j in junk if '"' not in j), f'for="{hop}"'])
        value += ", for=10.0.0.5"
        scope = _scope("10.0.0.2", value, header="forwarded")
        proxies = Proxies(["10.0.0.0/8"], header="forwarded")
    else:
        scope = _scope("10.0.0.2", ", ".join([*junk, hop, "10.0.0.5"]))
        proxies = Proxies(["10.0.0.0/8"])
    expected = str(client) if not any(client in n for n in [ipaddress.ip_network("10.0.0.0/8")]) else None
    found = proxies.client(scope)
    if expected is not None:
        assert found == expected
    else:  # the client is itself in the trusted range: the walk goes on into the junk, never crashes
        assert found is None or ipaddress.ip_address(found)


@given(st.text(max_size=300), st.sampled_from(["x-forwarded-for", "forwarded"]))
def test_proxy_headers_never_raise(value: str, header: str) -> None:
    proxies = Proxies(["10.0.0.0/8"], header=header)  # type: ignore[arg-type]
    found = proxies.client(
        _scope("10.0.0.2", value.encode("utf-8", "replace").decode("latin-1"), header=header)
    )
    assert found is None or ipaddress.ip_address(found)
    assert proxies.scheme(_scope("10.0.0.2", value, header=header)) in ("http", "https")
