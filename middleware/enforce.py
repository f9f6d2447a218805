"""The visitor's choice enforced on the site's own cookies, on every response through the middleware.

- A ``Set-Cookie`` for a declared cookie whose category or service the visitor has not granted is removed.
- ``strict`` also removes undeclared cookies; ``report`` lets them through and reports each name it sees
  (so the declaration can be kept true); ``off`` leaves the site's cookies alone.
- Cookies the browser sends that the visitor's consent does not (or no longer) allow are expired, on the
  host and on the configured domains and paths; a Set-Cookie from the server reaches HttpOnly cookies too.

Runs on the request path: a cookie name is classified once and remembered (a bounded cache).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Literal

from .consent import Consent
from .cookies import expire, is_token, set_cookie_name
from .declarations import NECESSARY, CookieRule, Declarations

# More cookies than this in one request are not looked at (and counted): a browser sends far fewer.
MAX_EXPIRED_PER_REQUEST = 64
# Removal headers per response, at most (about 3 KB): response headers beyond a proxy's buffer (nginx: 4 KB
# by default) turn into 502s. What is left over goes with the next responses.
MAX_EXPIRY_HEADERS = 32
_CACHE_SIZE = 4096
Header = tuple[bytes, bytes]
Enforce = Literal["strict", "report", "off"]


class Removal(StrEnum):
    NOT_GRANTED = "not_granted"  # a declared cookie of a category or service the visitor did not grant
    UNDECLARED = "undeclared"  # strict mode: a cookie nobody declared
    OWN_NAME = "own_name"  # a cookie the app set under one of koekje's own names: only koekje sets those


class CookieGuard:
    def __init__(
        self,
        declarations: Declarations,
        mode: Enforce,
        *,
        own: Iterable[str],
        domains: Iterable[str] = (),
        paths: Iterable[str] = ("/",),
        report: Callable[[str, str], None] | None = None,
    ) -> None:
        self._declarations = declarations
        self.mode = mode
        self.enabled = mode != "off"  # (read on every response: an attribute, not a property)
        self._own = frozenset(own)
        # "/" always: most cookies are set there, whatever other paths a site names (found by trying: with
        # only "/shop" listed, a withdrawn cookie of "/" was never expired, and every page tried again).
        paths = tuple(dict.fromkeys(("/", *paths)))
        self._places = [(None, path) for path in paths] + [(d, p) for d in domains for p in paths]
        self._report = report or (lambda name, path: None)
        self._rules: dict[str, CookieRule | None] = {}
        self.removed: Counter[tuple[str, Removal]] = Counter()  # (declared name, or cookie name; reason)
        self.counts: Counter[str] = Counter()  # malformed headers, clipped requests, expiries

    def rule(self, name: str) -> CookieRule | None:
        rule = self._rules.get(name, _MISSING)
        if rule is _MISSING:
            rule = self._declarations.rule(name)
            if len(self._rules) >= _CACHE_SIZE:
                self._rules.clear()
            self._rules[name] = rule
        return rule

    def allowed(self, name: str, consent: Consent | None) -> Removal | None:
        """Why a cookie may not be kept for this consent, or None when it may."""
        if name in self._own:
            return None
        rule = self.rule(name)
        if rule is None:
            return Removal.UNDECLARED if self.mode == "strict" else None
        if rule.category == NECESSARY or (
            consent is not None
            and (
                consent.allows(rule.category)
                or (rule.service is not None and rule.service in consent.services)
            )
        ):
            return None
        return Removal.NOT_GRANTED

    def filter(self, headers: list[Header], consent: Consent | None, path: str) -> int:
        """Remove, in place, each Set-Cookie the consent does not allow; report undeclared names.
        Returns how many were removed."""
        removed = 0
        kept = []
        for header in headers:
            if header[0].lower() != b"set-cookie":
                kept.append(header)
                continue
            name = set_cookie_name(header[1])
            if not is_token(name):
                # Browsers keep such cookies (no name, spaces, quotes, non-ASCII): never declared, so
                # undeclared; strict removes them like any other.
                self.counts["odd_cookie_name"] += 1
            # koekje's own cookies are koekje's to set (it adds them after this): found by trying, an app's
            # koekje_visit went out to a visitor without consent, and its koekje_consent over their choice.
            reason = Removal.OWN_NAME if name in self._own else self.allowed(name, consent)
            if reason is None:
                if self.mode == "report" and self.rule(name) is None:
                    self._report(name, path)
                kept.append(header)
                continue
            self.removed[(self._label(name), reason)] += 1
            removed += 1
        if removed:
            headers[:] = kept
        return removed

    def only_own(self, cookies: Mapping[str, str]) -> bool:
        """Whether the browser sent koekje's own cookies only (the common case for a consented visitor)."""
        return cookies.keys() <= self._own

    def expiries(self, cookies: Iterable[str], consent: Consent | None, *, secure: bool) -> list[Header]:
        """Set-Cookie headers that expire every cookie the browser sent that this consent does not allow."""
        headers: list[Header] = []
        for seen, name in enumerate(cookies):
            if seen >= MAX_EXPIRED_PER_REQUEST:
                self.counts["cookies_not_examined"] += 1
                break
            if self.allowed(name, consent) is None:
                continue
            if len(headers) + len(self._places) > MAX_EXPIRY_HEADERS:
                self.counts["expiries_deferred"] += 1
                break
            for domain, path in self._places:
                header = expire(name, domain=domain, path=path, secure=secure)
                if header is not None:
                    headers.append(header)
            self.counts["expired"] += 1
        return headers

    def _label(self, name: str) -> str:
        rule = self.rule(name)
        return rule.name if rule is not None else name


_MISSING: CookieRule | None = object()  # type: ignore[assignment]
