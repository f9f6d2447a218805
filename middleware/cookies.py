"""Set-Cookie headers, built with the standard library's cookie quoting."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Literal


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
