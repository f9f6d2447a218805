"""Visits: a visit ends after a stretch of inactivity (30 minutes by default), and a visitor is new or
returning.

The visit travels in a cookie of its own (``koekje_visit``, analytics category, HttpOnly), renewed with
every recorded page and left to expire in the browser after the timeout: the browser keeps the one clock
that counts, so every worker process, and every machine behind a ClickHouse server, sees the same visit
without sharing any state. (Matomo's ``_pk_ses`` works the same way; a per-process "last seen" table would
split one visit in as many as there are workers.) The value is the visit's start (Unix seconds) and
whether the visitor was returning: nothing a visitor could learn from it that they do not know.

Returning: a visit that begins more than one timeout after the visitor's latest decision. Every decision
is made on a page of the site, so such a visitor was here before; a visit that begins right after the
decision that gave analytics consent is the visitor's first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta

from .consent import Consent
from .records import Visit

Header = tuple[bytes, bytes]

# Renewals made, by visit: a visitor's pages renew the same cookie, byte for byte (bounded: one per visit).
_MAX_RENEWALS = 4096
# Longer than this and a visit is cut (a page left open and reloaded all day long is not one visit).
MAX_VISIT_SECONDS = 24 * 3600
_CLOCK_SKEW = 60  # a start this far in the future still counts: several machines, several clocks


class Visits:
    def __init__(self, cookie: str, timeout: timedelta) -> None:
        self.cookie = cookie
        self.timeout = int(timeout.total_seconds())
        self._tail = f"; Max-Age={self.timeout}; Path=/; HttpOnly; SameSite=Lax"
        self.counts: Counter[str] = Counter()
        self._renewals: dict[tuple[int, bool, bool], Header] = {}
        self._continuing: dict[tuple[str, bool], tuple[Visit, Header]] = {}  # by cookie value and Secure

    def track(
        self, consent: Consent | None, cookies: Mapping[str, str], now: datetime, *, secure: bool
    ) -> tuple[Visit, Header]:
        """The visit a recorded page of a visitor with this consent belongs to (a new one when the cookie
        is missing, expired or malformed), and the Set-Cookie that renews it."""
        seconds = int(now.timestamp())
        value = cookies.get(self.cookie)
        if value:
            # A visit's pages send the same cookie: its visit and renewal are kept, checked against the clock.
            known = self._continuing.get((value, secure))
            if known is not None and seconds - MAX_VISIT_SECONDS <= known[0].start <= seconds + _CLOCK_SKEW:
                return known
        visit = self._current(value, seconds)
        if visit is None:
            decided = consent.given_at.timestamp() if consent is not None else 0
            visit = Visit(seconds, decided < seconds - self.timeout, True)
        key = (visit.start, visit.returning, secure)
        renewal = self._renewals.get(key)
        if renewal is None:
            text = f"{self.cookie}={visit.start}.{int(visit.returning)}{self._tail}"
            renewal = (b"set-cookie", (text + "; Secure" if secure else text).encode("latin-1"))
            if len(self._renewals) >= _MAX_RENEWALS:
                self._renewals.clear()
            self._renewals[key] = renewal
        if value and not visit.entry:
            if len(self._continuing) >= _MAX_RENEWALS:
                self._continuing.clear()
            self._continuing[(value, secure)] = (visit, renewal)
        return visit, renewal

    def current(self, cookies: Mapping[str, str], now: datetime) -> Visit | None:
        """The visit the browser's cookie names (not renewed); None (counted when it is not a visit at all)
        when there is none."""
        return self._current(cookies.get(self.cookie), int(now.timestamp()))

    def _current(self, value: str | None, seconds: int) -> Visit | None:
        if not value:
            return None
        start, dot, flag = value.partition(".")
        if not (dot and start.isascii() and start.isdigit() and len(start) <= 12 and flag in ("0", "1")):
            self.counts["malformed_visit_cookie"] += 1
            return None
        begun = int(start)
        if not seconds - MAX_VISIT_SECONDS <= begun <= seconds + _CLOCK_SKEW:
            self.counts["visit_cut"] += 1
            return None
        return Visit(begun, flag == "1", False)
