"""Client addresses: which one to believe, and truncating it before anything keeps it.

A full address exists only on the request path, in memory, for the GeoIP lookup; everything stored or
queued gets the truncated form (IPv4 /24 and IPv6 /48 by default).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from starlette.types import Scope

_V4_MAPPED = bytes(10) + b"\xff\xff"
_6TO4 = b"\x20\x02"  # 2002::/16 carries the whole IPv4 address in bits 16-48


class Truncator:
    """Zeroes all bits of an address after the configured prefix. IPv4-mapped IPv6 counts as IPv4."""

    def __init__(self, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> None:
        if not (0 <= ipv4_prefix <= 32 and 0 <= ipv6_prefix <= 128):
            raise ValueError("prefix lengths must be 0-32 (IPv4) and 0-128 (IPv6)")
        self._v4_mask = ((1 << ipv4_prefix) - 1) << (32 - ipv4_prefix)
        self._v6_mask = ((1 << ipv6_prefix) - 1) << (128 - ipv6_prefix)

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
            masked = int.from_bytes(packed, "big") & self._v6_mask
            return socket.inet_ntop(socket.AF_INET6, masked.to_bytes(16, "big"))
        try:
            return self._v4(socket.inet_pton(socket.AF_INET, address))
        except (OSError, ValueError):
            return None

    def _v4(self, packed: bytes) -> str:
        masked = int.from_bytes(packed, "big") & self._v4_mask
        return socket.inet_ntop(socket.AF_INET, masked.to_bytes(4, "big"))


class ClientAddress:
    """The visitor's address: the peer, or, behind trusted proxies, the nearest untrusted hop
    of X-Forwarded-For (the left part of that header is whatever the client chose to send)."""

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self._trusted = tuple(ipaddress.ip_network(net, strict=False) for net in trusted_proxies)

    def __call__(self, scope: Scope) -> str | None:
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        if not self._trusted or peer is None or not self._is_trusted(peer):
            return peer
        forwarded = b",".join(value for name, value in scope["headers"] if name == b"x-forwarded-for")
        for hop in reversed(forwarded.decode("latin-1").split(",")):
            hop = hop.strip()
            if not hop:
                continue
            ip = _parse(hop)
            if ip is None:
                return None  # garbage where the nearest untrusted hop should be: no address
            if not self._trusted_ip(ip):
                return hop
        return peer

    def _is_trusted(self, address: str) -> bool:
        ip = _parse(address)
        return ip is not None and self._trusted_ip(ip)

    def _trusted_ip(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip in network for network in self._trusted)


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None
