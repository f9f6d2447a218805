"""The site's declared services and cookies: what the banner lists, what the server enforces.

A *service* (``youtube``, ``matomo``) belongs to one category; a visitor may grant a whole category or a
single service. A *cookie* declaration names a cookie exactly (``_ga``) or by a trailing-``*`` pattern
(``_ga_*``) and belongs to a service or directly to a category. Each cookie name matches at most one
declaration: overlapping ones are refused at start-up, so enforcement never has to guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

NECESSARY = "necessary"
# RFC 6265 cookie-name characters (an HTTP token).
_COOKIE_NAME = re.compile(r"[!#$%&'+\-.^_`|~0-9A-Za-z]{1,128}")
SERVICE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
DURATION = re.compile(r"(\d{1,4})\s*(second|minute|hour|day|week|month|year)s?")
# Upper bounds, so that a cookie living "1 month" is never reported as outliving its declaration.
_UNIT_SECONDS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 31 * 86400,
    "year": 366 * 86400,
}
Party = Literal["first", "third"]


def parse_duration(text: str) -> int | None:
    """Seconds in a declared duration: ``"session"`` is None, ``"13 months"`` is 13 x 31 days.
    ValueError names the accepted forms."""
    cleaned = text.strip().lower()
    if cleaned == "session":
        return None
    match = DURATION.fullmatch(cleaned)
    if match is None or int(match[1]) == 0:
        raise ValueError(
            f"duration {text[:40]!r}: write 'session' or a number and a unit, e.g. '13 months', '30 days'"
        )
    return int(match[1]) * _UNIT_SECONDS[match[2]]


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    category: str
    provider: str
    title: Mapping[str, str]  # per language; empty: the id is shown
    purpose: Mapping[str, str]  # per language
    privacy_url: str | None


@dataclass(frozen=True, slots=True)
class CookieRule:
    """One declared cookie (or family of cookies, when ``pattern``)."""

    name: str  # as declared: exact, or a prefix followed by '*'
    category: str
    service: str | None
    provider: str
    purpose: Mapping[str, str]
    duration: str
    max_seconds: int | None  # None: a session cookie
    party: Party

    @property
    def pattern(self) -> bool:
        return self.name.endswith("*")

    def matches(self, cookie: str) -> bool:
        return cookie.startswith(self.name[:-1]) if self.pattern else cookie == self.name


class Declarations:
    """Services and cookie rules, checked for consistency; ``rule(name)`` finds a cookie's declaration."""

    def __init__(
        self,
        services: Iterable[Service],
        cookies: Iterable[CookieRule],
        *,
        categories: Iterable[str],
        reserved: Iterable[str] = (),
    ) -> None:
        self.categories = (NECESSARY, *categories)
        self.services = {service.id: service for service in services}
        self.cookies = tuple(cookies)
        self._exact: dict[str, CookieRule] = {}
        self._prefixes: list[CookieRule] = []
        self._check(frozenset(reserved))
        for rule in self.cookies:
            if rule.pattern:
                self._prefixes.append(rule)
            else:
                self._exact[rule.name] = rule
        # Longest prefix first; they never overlap, so the order only speeds up the common case.
        self._prefixes.sort(key=lambda rule: -len(rule.name))

    def rule(self, cookie: str) -> CookieRule | None:
        """The declaration covering a cookie name, or None when it is undeclared."""
        rule = self._exact.get(cookie)
        if rule is None:
            for candidate in self._prefixes:
                if cookie.startswith(candidate.name[:-1]):
                    return candidate
        return rule

    def services_of(self, category: str) -> list[Service]:
        return [service for service in self.services.values() if service.category == category]

    def cookies_of(self, category: str) -> list[CookieRule]:
        return [rule for rule in self.cookies if rule.category == category]

    def _check(self, reserved: frozenset[str]) -> None:
        for service in self.services.values():
            where = f"consent.services.{service.id}"
            if not SERVICE_ID.fullmatch(service.id):
                raise ValueError(f"{where}: a service id is 1-64 lowercase letters, digits, '_' or '-'")
            if service.id in self.categories:
                raise ValueError(f"{where}: a service may not be named like a category")
            if service.category not in self.categories:
                raise ValueError(
                    f"{where}.category: {service.category!r} is not one of {list(self.categories)}"
                )
        for index, rule in enumerate(self.cookies):
            where = f"consent.cookies[{index}] ({rule.name!r})"
            stem = rule.name[:-1] if rule.pattern else rule.name
            if not _COOKIE_NAME.fullmatch(stem) or "*" in stem:
                raise ValueError(
                    f"{where}.name: use the cookie's exact name, or a prefix followed by a single '*' "
                    "at the end (e.g. '_ga_*')"
                )
            if rule.category not in self.categories:
                raise ValueError(f"{where}.category: {rule.category!r} is not one of {list(self.categories)}")
            if any(rule.matches(name) or (rule.pattern and name.startswith(stem)) for name in reserved):
                raise ValueError(f"{where}.name: koekje's own cookies are declared by koekje itself")
        for i, first in enumerate(self.cookies):
            for j in range(i + 1, len(self.cookies)):
                second = self.cookies[j]
                if _overlap(first.name, second.name):
                    raise ValueError(
                        f"consent.cookies[{i}] ({first.name!r}) and consent.cookies[{j}] ({second.name!r}) "
                        "can match the same cookie: declare each cookie once"
                    )


def _overlap(a: str, b: str) -> bool:
    """Whether some cookie name matches both declarations (exact names or trailing-'*' prefixes)."""
    a_stem, b_stem = a.rstrip("*"), b.rstrip("*")
    if a.endswith("*") and b.endswith("*"):
        return a_stem.startswith(b_stem) or b_stem.startswith(a_stem)
    if a.endswith("*"):
        return b.startswith(a_stem)
    if b.endswith("*"):
        return a.startswith(b_stem)
    return a == b
