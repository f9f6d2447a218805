"""Small HTTP helpers shared by koekje's own endpoints (the dashboard and the middleware's)."""

from __future__ import annotations

from urllib.parse import urlsplit

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


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is longer than ``limit`` bytes (reading stops there)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return body
