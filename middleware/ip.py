"""Client addresses: which one to believe, and truncating it before anything keeps it.

A full address exists only on the request path, in memory, for the GeoIP lookup; everything stored or
queued gets the truncated form (IPv4 /24 and IPv6 /48 by default).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from typing import Literal

from starlette.types import Scope

_V4_MAPPED = bytes(10) + b"\xff\xff"
_6TO4 = b"\x20\x02"  # 2002::/16 carries the whole IPv4 address in bits 16-48
# A proxy header longer than this is not something a proxy chain sends: only its last part is read.
MAX_PROXY_HEADER = 4096

ProxyHeader = Literal["x-forwarded-for", "forwarded"]
log = logging.getLogger("koekje")


class Truncator:
    """Zeroes all bits of an address after the configured prefix. IPv4-mapped IPv6 counts as IPv4."""

    def __init__(self, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> None:
        if not (0 <= ipv4_prefix <= 32 and 0 <= ipv6_prefix <= 128):
            raise ValueError("prefix lengths must be 0-32 (IPv4) and 0-128 (IPv6)")
        self._v4_mask = ((1 << ipv4_prefix) - 1) << (32 - ipv4_prefix)
        self._v6_mask = ((1 << ipv6_prefix) - 1) << (128 - ipv6_prefix)
        # Whole bytes (the defaults, /24 and /48): kept bytes and zeros, without arithmetic.
        self._v4_bytes = ipv4_prefix // 8 if ipv4_prefix % 8 == 0 else None
        self._v6_bytes = ipv6_prefix // 8 if ipv6_prefix % 8 == 0 else None

    def __call__(self, address: str) -> str | None:
        """The truncated address, or None when ``address`` is not an IP address."""
        if ":" in address:
            try:
                packed = socket.inet_pton(socket.AF_INET6, address.partition("%")[0])
            except (OSError, ValueError):
                return None
            if packed.startswith(_V4_MAPPED):
                return self._v4(packed[12:])
            if packed.startswith(_6TO4):
                v4 = socket.inet_pton(socket.AF_INET, self._v4(packed[2:6]))
                return socket.inet_ntop(socket.AF_INET6, _6TO4 + v4 + bytes(10))
            if self._v6_bytes is not None:
                kept = self._v6_bytes
                return socket.inet_ntop(socket.AF_INET6, packed[:kept] + bytes(16 - kept))
            masked = int.from_bytes(packed, "big") & self._v6_mask
            return socket.inet_ntop(socket.AF_INET6, masked.to_bytes(16, "big"))
        try:
            packed = socket.inet_pton(socket.AF_INET, address)
        except (OSError, ValueError):
            return None
        if self._v4_bytes == 3:
            # The common case, in text: inet_pton takes only the canonical dotted quad (no leading zeros,
            # no spaces, no other forms), so its first three parts are the prefix inet_ntop would write.
            return address[: address.rindex(".")] + ".0"
        return self._v4(packed)

    def _v4(self, packed: bytes) -> str:
        if self._v4_bytes is not None:
            kept = self._v4_bytes
            return socket.inet_ntop(socket.AF_INET, packed[:kept] + bytes(4 - kept))
        masked = int.from_bytes(packed, "big") & self._v4_mask
        return socket.inet_ntop(socket.AF_INET, masked.to_bytes(4, "big"))


class Proxies:
    """What the trusted reverse proxies say about the client: its address and the scheme it used.

    Only the header the proxies are configured to write is read (``X-Forwarded-For`` or RFC 7239
    ``Forwarded``): a proxy appends to one of them and passes the other through, so reading both would let a
    client choose its own address. In that header the nearest untrusted hop is the client; what lies to its
    left is whatever the client chose to send."""

    def __init__(self, trusted: Iterable[str] = (), header: ProxyHeader = "x-forwarded-for") -> None:
        self._trusted = tuple(ipaddress.ip_network(net, strict=False) for net in trusted)
        self._header = header.encode()
        self._warned = bool(self._trusted)  # without trusted proxies: say once if one seems to be there
        self._looked = 0
        self._told_rewritten = False

    def client(self, scope: Scope) -> str | None:
        """The visitor's address: the peer, or behind trusted proxies the nearest untrusted hop."""
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        if not self._trusted:
            if not self._warned:
                self._looked += 1
                # A proxy sends its header with every request: the first ones and then a sample will do.
                if self._looked <= 64 or self._looked & 63 == 0:
                    self._warn_if_proxied(scope, peer)
            return peer
        if peer is None or not self._is_trusted(peer):
            if peer is not None and self._header == b"forwarded" and self._rewritten(scope, peer):
                return None  # chosen by the visitor, as far as koekje can tell: no address rather than that
            return peer
        found, address = self._nearest_untrusted(self._hops(scope))
        return address if found else peer

    def _nearest_untrusted(self, hops: list[str]) -> tuple[bool, str | None]:
        """From the nearest hop back: whether one is not a trusted proxy, and its address (None for garbage,
        "unknown" or an obfuscated name where the client should be)."""
        for hop in reversed(hops):
            ip = _parse(hop)
            if ip is None:
                return True, None
            if not any(ip in network for network in self._trusted):
                return True, str(ip)
        return False, None

    def scheme(self, scope: Scope) -> str:
        """``https`` or ``http`` as the visitor used it: the proxy's word when the peer is trusted."""
        scheme = str(scope.get("scheme", "http"))
        client = scope.get("client")
        if not self._trusted or not client or not self._is_trusted(client[0]):
            return scheme
        if self._header == b"forwarded":
            elements = _forwarded_elements(_header(scope, b"forwarded"))
            said = elements[-1].get("proto", "") if elements else ""
        else:
            said = _header(scope, b"x-forwarded-proto").rpartition(",")[2].strip()
        said = said.lower()
        return said if said in ("http", "https") else scheme

    def _warn_if_proxied(self, scope: Scope, peer: str | None) -> None:
        """A site behind a proxy that is not listed sees every visitor as the proxy: one address prefix for
        all (one budget of decisions, one truncated address). Said once, in the log."""
        if any(name in (b"x-forwarded-for", b"forwarded") for name, _ in scope["headers"]):
            self._warned = True
            log.warning(
                "koekje: requests carry X-Forwarded-For or Forwarded, but site.trusted_proxies is empty, so "
                "every visitor appears as the peer (%s). If a reverse proxy runs in front of this site, list "
                "its network in site.trusted_proxies.",
                _network_of(peer),
            )

    def _rewritten(self, scope: Scope, peer: str) -> bool:
        """Whether the server replaced the peer with an address from X-Forwarded-For before koekje saw it
        (uvicorn does by default for requests from 127.0.0.1), while the proxies write Forwarded, and the
        two disagree: a proxy that writes only Forwarded passes a visitor's X-Forwarded-For through, so
        the visitor chose that address (found by a helper). A proxy that writes both names the same visitor
        in each, and the address stands (found by a review: all such requests had lost theirs). Addresses
        are compared as addresses (uvicorn strips ports and brackets), over the whole header (trusted
        hops could pad it). Said once, with the fix."""
        ip = _parse(peer)
        if ip is None:
            return False
        forwarded_for = b",".join(v for n, v in scope["headers"] if n == b"x-forwarded-for").decode("latin-1")
        if not forwarded_for or ip not in {_parse(hop.strip()) for hop in forwarded_for.split(",")}:
            return False
        hops = self._hops(scope)  # (Forwarded's)
        if not hops:
            return False  # no proxy of the kind koekje was told about in front of this request
        found, said = self._nearest_untrusted(hops)
        if found and said == str(ip):
            return False  # the proxy's own word: the same visitor
        if not self._told_rewritten:
            self._told_rewritten = True
            log.warning(
                "koekje: the server took the client address from X-Forwarded-For (uvicorn does for requests "
                "from --forwarded-allow-ips, 127.0.0.1 by default), but site.proxy_header is 'forwarded', "
                "and that header names someone else: a visitor could choose their address that way. "
                "Start uvicorn with --forwarded-allow-ips '' (or --no-proxy-headers) and let koekje read "
                "Forwarded. Until then such requests have no address."
            )
        return True

    def _hops(self, scope: Scope) -> list[str]:
        value = _header(scope, self._header)
        if self._header == b"forwarded":
            return [element.get("for", "") for element in _forwarded_elements(value)]
        return [hop for hop in (part.strip() for part in value.split(",")) if hop]

    def _is_trusted(self, address: str) -> bool:
        ip = _parse(address)
        return ip is not None and any(ip in network for network in self._trusted)


def _network_of(peer: str | None) -> str:
    """Enough of the peer's address to recognise a proxy's network, never a visitor's whole address."""
    if peer is None:
        return "no address"
    return Truncator()(peer) or "no address"


def _header(scope: Scope, name: bytes) -> str:
    """All values of one request header joined as one list, keeping only its last MAX_PROXY_HEADER chars."""
    value = b",".join(v for n, v in scope["headers"] if n == name)
    return value[-MAX_PROXY_HEADER:].decode("latin-1")


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded``: a comma-separated list of ``key=value;key=value`` elements, values
    possibly quoted. Hand-written because no maintained library parses it; it is small and property-tested."""
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    key = ""
    i, n = 0, len(value)
    while i < n:
        char = value[i]
        if char == ",":
            elements.append(element)
            element, key = {}, ""
        elif char == ";":
            key = ""
        elif char == "=" and key:
            i += 1
            if i < n and value[i] == '"':
                end = value.find('"', i + 1)
                end = n if end < 0 else end
                element[key] = value[i + 1 : end].replace("\\", "")
                i = end + 1
                continue
            end = i
            while end < n and value[end] not in ",;":
                end += 1
            element[key] = value[i:end].strip()
            i = end
            continue
        elif not char.isspace():
            key += char.lower()
        i += 1
    elements.append(element)
    return [e for e in elements if e]


def _parse(hop: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``, ``[2001:db8::1]`` or
    ``[2001:db8::1]:80``; None for anything else (``unknown``, ``_hidden``, junk)."""
    hop = hop.strip().strip('"')
    if hop.startswith("["):
        hop, bracket, rest = hop[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
    elif hop.count(":") == 1:
        hop, _, port = hop.partition(":")
        if not port.isdigit():
            return None
    try:
        return ipaddress.ip_address(hop)
    except ValueError:
        return None
