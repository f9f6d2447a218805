"""Small HTTP helpers shared by koekje's own endpoints (the dashboard and the middleware's)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

import anyio
from itsdangerous import TimestampSigner
from starlette.datastructures import Headers
from starlette.requests import Request

from .clock import Clock

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def is_same_origin(headers: Headers, scheme: str) -> bool:
    """True unless the browser says the request comes from another site.

    Current browsers send ``Sec-Fetch-Site``, which pages cannot forge; it decides when present (and keeps
    working behind a proxy that rewrites Host). Older browsers send ``Origin`` with a POST: its scheme, host
    and port must be those of this request (``scheme`` as the visitor used it, Host as sent). A request with
    neither is not a browser's cross-site request."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return True
    return _origin(origin) == _origin(f"{scheme}://{headers.get('host', '')}") != ("", "", 0)


def form_origin(headers: Headers, scheme: str) -> str:
    """Where a plain form post comes from: ``same`` (this site), ``cross`` (another site) or ``unknown``.

    Stricter than ``is_same_origin``: a form post is a "simple" request, which any site can make a browser
    send, so a request without evidence is not trusted. ``Sec-Fetch-Site`` decides when present; else
    ``Origin`` (when not ``null``: pages with ``Referrer-Policy: no-referrer`` send ``null``); else
    ``Referer``. Old browsers and strict referrer policies leave ``unknown``: the caller then asks the
    visitor to confirm on a page of koekje's own, whose policy lets the browser say where the post is from."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return "same" if fetch_site == "same-origin" else "cross" if fetch_site != "none" else "unknown"
    here = _origin(f"{scheme}://{headers.get('host', '')}")
    origin = headers.get("origin")
    if origin is not None and origin.strip() != "null":
        return "same" if _origin(origin) == here != ("", "", 0) else "cross"
    referer = headers.get("referer")
    if referer:
        parts = urlsplit(referer) if _is_url(referer) else None
        where = _origin(f"{parts.scheme}://{parts.netloc}") if parts is not None else ("", "", 0)
        return "same" if where == here != ("", "", 0) else "cross"
    return "unknown"


def _is_url(value: str) -> bool:
    try:
        urlsplit(value).port  # noqa: B018  # raises on a malformed port
    except ValueError:
        return False
    return True


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an origin, ports made explicit; empty for anything else (``null``, junk)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ("", "", 0)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.username:
        return ("", "", 0)
    return (scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme])


def media_type(headers: Headers) -> str:
    """The request's Content-Type without parameters, lowercased."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


def clock_signer(clock: Clock) -> type[TimestampSigner]:
    """An itsdangerous signer class whose timestamps come from ``clock`` (so tests pin time)."""

    class ClockTimestampSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock().timestamp())

    return ClockTimestampSigner


def is_secure(scope_scheme: str, setting: bool | None) -> bool:
    """Whether to mark cookies Secure: the setting when given, else whether the request came over https."""
    return scope_scheme == "https" if setting is None else setting


# How long a body koekje reads may take to arrive in full. Its endpoints take a few kilobytes at most, which
# any client sends at once; one that trickles (or announces more than it sends) would hold a connection and
# a task for as long as it likes, since the server does not time out a body either.
BODY_SECONDS = 10.0


class BodyTimeout(Exception):
    """A request body did not arrive within ``BODY_SECONDS`` (the middleware answers 408, and counts it)."""


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is longer than ``limit`` bytes: said so by its Content-Length
    (refused before reading any of it), or found while reading (reading stops there). Raises BodyTimeout
    when it takes longer than ``BODY_SECONDS`` to arrive."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:  # (the server refuses a malformed length itself)
        return None
    body = b""
    try:
        with anyio.fail_after(BODY_SECONDS):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return None
    except TimeoutError:
        raise BodyTimeout(f"the request body did not arrive within {BODY_SECONDS:g} s") from None
    return body


class Networks:
    """An address allowlist: client networks as CIDRs (IPv4 and IPv6)."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: object) -> bool:
        """Whether ``address`` (a string) is in one of the networks; never for a missing or bad address."""
        if not isinstance(address, str):
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        return any(ip in network for network in self._networks)
