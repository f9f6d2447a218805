"""Set-Cookie headers: koekje's own (built with the standard library's cookie quoting), removals of the
site's cookies, and reading the name out of a Set-Cookie header the app sent."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Literal

# An RFC 6265 cookie name (an HTTP token); a name the browser sent that is not one is never echoed back.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")


def set_cookie(
    name: str,
    value: str,
    *,
    max_age: int,
    secure: bool,
    path: str = "/",
    samesite: Literal["lax", "strict"] = "lax",
) -> tuple[bytes, bytes]:
    """A raw ASGI ``set-cookie`` header; always HttpOnly (koekje's cookies are not for scripts)."""
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    morsel = cookie[name]
    morsel["max-age"] = max_age
    morsel["path"] = path
    morsel["httponly"] = True
    morsel["samesite"] = samesite
    if secure:
        morsel["secure"] = True
    return b"set-cookie", morsel.OutputString().encode("latin-1")


def delete_cookie(name: str, *, secure: bool, path: str = "/") -> tuple[bytes, bytes]:
    return set_cookie(name, "", max_age=0, secure=secure, path=path)


def expire(name: str, *, domain: str | None, path: str, secure: bool) -> tuple[bytes, bytes] | None:
    """A header that removes any cookie called ``name`` on ``domain`` (None: the host itself) and ``path``,
    HttpOnly or not; None when the browser would ignore it (a name that is no token, a ``__Host-`` or
    ``__Secure-`` cookie outside https, a ``__Host-`` cookie anywhere but the host and ``/``)."""
    if not _TOKEN.fullmatch(name):
        return None
    if name.startswith("__Host-") and (domain is not None or path != "/" or not secure):
        return None
    if name.startswith("__Secure-") and not secure:
        return None
    parts = [f"{name}=", "Max-Age=0", "Expires=Thu, 01 Jan 1970 00:00:00 GMT", f"Path={path}"]
    if domain is not None:
        parts.append(f"Domain={domain}")
    if secure:
        parts.append("Secure")
    return b"set-cookie", "; ".join(parts).encode("latin-1")


def set_cookie_name(value: bytes) -> str | None:
    """The cookie name in a Set-Cookie header value; None when the header is malformed."""
    pair = value.split(b";", 1)[0]
    name, equals, _ = pair.partition(b"=")
    name = name.strip()
    if not equals or not name:
        return None
    try:
        text = name.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if _TOKEN.fullmatch(text) else None
