"""Set-Cookie headers: koekje's own (built with the standard library's cookie quoting), removals of the
site's cookies, and reading the name out of a Set-Cookie header the app sent."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Literal

# An RFC 6265 cookie name is an HTTP token, but browsers store (and send) names with spaces, quotes,
# brackets or non-ASCII too. Such a name can be echoed in a header as long as it holds no control character,
# ";" or "=" (which would change what the header means).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")
_ECHOABLE = re.compile(r"[^\x00-\x1f\x7f;=]{1,256}")
# A browser keeps a cookie without a name (``Set-Cookie: value``); setting another nameless one replaces it.
_NAMELESS = "koekje-expired"


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
    """A header that removes any cookie called ``name`` (``""``: the nameless one) on ``domain`` (None: the
    host itself) and ``path``, HttpOnly or not; None when that cannot be said safely or the browser would
    ignore it (a ``__Host-`` or ``__Secure-`` cookie outside https, a ``__Host-`` one anywhere but the host
    and ``/``)."""
    if name and not _ECHOABLE.fullmatch(name.strip()):
        return None
    name = name.strip()
    if name.startswith("__Host-") and (domain is not None or path != "/" or not secure):
        return None
    if name.startswith("__Secure-") and not secure:
        return None
    first = f"{name}=" if name else _NAMELESS
    parts = [first, "Max-Age=0", "Expires=Thu, 01 Jan 1970 00:00:00 GMT", f"Path={path}"]
    if domain is not None:
        parts.append(f"Domain={domain}")
    if secure:
        parts.append("Secure")
    return b"set-cookie", "; ".join(parts).encode("latin-1")


def set_cookie_name(value: bytes) -> str:
    """The name of the cookie a Set-Cookie header sets, read as browsers read it (RFC 6265bis): the part
    before the first "=" of the first pair, trimmed; without "=", the nameless cookie (``""``)."""
    pair = value.split(b";", 1)[0]
    name, equals, _ = pair.partition(b"=")
    if not equals:
        return ""
    name = name.strip(b" \t")
    try:
        return name.decode()  # browsers read cookie names as UTF-8
    except UnicodeDecodeError:
        return name.decode("latin-1")


def is_token(name: str) -> bool:
    """Whether a cookie name is what RFC 6265 allows (what koekje's declarations can name)."""
    return _TOKEN.fullmatch(name) is not None
