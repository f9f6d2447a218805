"""The visitor's consent and the signed cookie that carries it.

The cookie holds the granted categories and services, the policy revision, the id of the ledger row that
proves the decision, how it was made, and, only while statistics are allowed, the visitor's random id. It is
signed with itsdangerous (keys rotate: a list, newest last), so nobody can grant themselves anything or
invent visitor ids: an id exists only because a recorded decision created it. Verified values are cached,
so a returning visitor costs a dict lookup instead of an HMAC.

A decision that was replaced (withdrawn, narrowed, changed) is *superseded*: its cookie, presented again,
counts for nothing (``Revocations``).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from itsdangerous import BadSignature, URLSafeTimedSerializer

from koekje.analytics import Clock
from koekje.analytics.ledger import IMPLICIT_METHODS, Method
from koekje.analytics.web import clock_signer

from .declarations import NECESSARY

MAX_COOKIE_LENGTH = 1024
_HEX_ID = re.compile(r"[0-9a-f]{32}")
_METHODS = {str(m): m for m in Method}


@dataclass(frozen=True, slots=True)
class Consent:
    categories: frozenset[str]  # always includes NECESSARY
    services: frozenset[str]  # services granted on their own, beyond whole categories
    revision: int
    id: UUID
    given_at: datetime
    method: Method
    visitor_id: UUID | None = None  # only while analytics is granted
    # Whether the visitor ever chose by hand (not only a region default or a browser signal): if not, the
    # banner still asks. Survives a later GPC narrowing of a hand-made choice.
    decided: bool = True
    gpc: bool = False  # the browser sent Global Privacy Control when this decision was made
    legacy: bool = False  # signed by koekje 0.1 (no decision time of its own)

    def allows(self, category: str) -> bool:
        return category in self.categories

    def allows_service(self, service: str, category: str) -> bool:
        return category in self.categories or service in self.services

    def widens(self, before: Consent | None) -> bool:
        """Whether this decision grants a category or service that ``before`` did not (without an earlier
        decision: anything beyond the necessary)."""
        if before is None:
            return bool(self.services or self.categories - {NECESSARY})
        return bool(self.categories - before.categories or self.services - before.services)

    def as_json(self) -> dict[str, object]:
        return {
            "categories": sorted(self.categories, key=lambda c: (c != NECESSARY, c)),
            "services": sorted(self.services),
            "given_at": self.given_at.isoformat().replace("+00:00", "Z"),
            "id": self.id.hex,
            "method": str(self.method),
            "decided": self.decided,
        }


class ConsentCookies:
    """Signs and verifies consent cookie values."""

    def __init__(
        self,
        secret_keys: tuple[str, ...],
        *,
        categories: Iterable[str],
        services: Iterable[str] = (),
        revision: int,
        max_age: timedelta,
        clock: Clock,
        cache_size: int = 4096,
    ) -> None:
        self._serializer = URLSafeTimedSerializer(
            list(secret_keys), salt="koekje.consent", signer=clock_signer(clock)
        )
        self._categories = frozenset(categories) | {NECESSARY}
        self._services = frozenset(services)
        self._revision = revision
        self._max_age = max_age
        self._clock = clock
        self._cache: OrderedDict[str, Consent] = OrderedDict()
        self._cache_size = cache_size

    def new(
        self,
        categories: frozenset[str],
        consent_id: UUID,
        *,
        method: Method,
        services: frozenset[str] = frozenset(),
        visitor_id: UUID | None = None,
        decided: bool | None = None,
        gpc: bool = False,
    ) -> Consent:
        """A decision made now for the current policy revision (whole seconds: what the cookie carries)."""
        categories = (categories & self._categories) | {NECESSARY}
        now = self._clock().replace(microsecond=0)
        vid = visitor_id if "analytics" in categories else None
        by_hand = method not in IMPLICIT_METHODS if decided is None else decided
        return Consent(
            categories, services & self._services, self._revision, consent_id, now, method, vid, by_hand, gpc
        )

    def dumps(self, consent: Consent) -> str:
        payload: dict[str, object] = {
            "c": sorted(consent.categories - {NECESSARY}),
            "r": consent.revision,
            "i": consent.id.hex,
            "m": str(consent.method),
            # The decision's own time: a cookie signed again (moved to another name) lasts no longer.
            "t": int(consent.given_at.timestamp()),
        }
        if consent.services:
            payload["s"] = sorted(consent.services)
        if consent.visitor_id is not None:
            payload["v"] = consent.visitor_id.hex
        if not consent.decided:
            payload["d"] = 0
        if consent.gpc:
            payload["g"] = 1
        return self._serializer.dumps(payload)

    def loads(self, value: str | None) -> Consent | None:
        """The consent in a cookie value; None when absent, forged, expired or for an older policy."""
        if not value or len(value) > MAX_COOKIE_LENGTH:
            return None
        consent = self._cache.get(value)
        if consent is not None:
            self._cache.move_to_end(value)
        else:
            consent = self._verify(value)
            if consent is None:
                return None
            self._cache[value] = consent
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        if self._clock() - consent.given_at > self._max_age:
            return None
        return consent

    def _verify(self, value: str) -> Consent | None:
        try:
            payload, signed_at = self._serializer.loads(
                value, max_age=int(self._max_age.total_seconds()), return_timestamp=True
            )
        except BadSignature:
            return None
        if not isinstance(payload, dict):
            return None
        categories, services = payload.get("c"), payload.get("s", [])
        consent_id, vid, method = payload.get("i"), payload.get("v"), _METHODS.get(payload.get("m", "banner"))
        if (
            payload.get("r") != self._revision
            or method is None
            or not _is_hex_id(consent_id)
            or (vid is not None and not _is_hex_id(vid))
            or not _is_str_list(categories)
            or not _is_str_list(services)
            or payload.get("d", 1) not in (0, 1)
            or payload.get("g", 0) not in (0, 1)
        ):
            return None
        given = payload.get("t")
        given_at = signed_at.astimezone(UTC)
        if isinstance(given, int) and 0 < given <= given_at.timestamp():
            given_at = datetime.fromtimestamp(given, UTC)
        chosen = (frozenset(categories) & self._categories) | {NECESSARY}  # type: ignore[arg-type]
        visitor = UUID(vid) if vid is not None and "analytics" in chosen else None
        return Consent(
            chosen,
            frozenset(services) & self._services,
            self._revision,
            UUID(consent_id),
            given_at,
            method,
            visitor,
            decided=payload.get("d", 1) == 1,
            gpc=payload.get("g", 0) == 1,
            legacy="t" not in payload,
        )


def _is_hex_id(value: object) -> bool:
    return isinstance(value, str) and _HEX_ID.fullmatch(value) is not None


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and len(value) <= 64 and all(isinstance(v, str) for v in value)


class Revocations:
    """Consent ids that a later decision replaced. Checked on every request (a set lookup); filled by the
    ledger writer's thread from what this and every other process recorded. An id is kept as long as a
    cookie carrying it could still be valid, then forgotten."""

    def __init__(self, lifetime: timedelta, clock: Clock) -> None:
        self._lifetime = lifetime.total_seconds()
        self._clock = clock
        self._until: dict[int, float] = {}  # the id's first 64 bits -> when its cookie expires at the latest
        self._lock = threading.Lock()  # writers only; readers use the dict lock-free (atomic under the GIL)
        self._next_purge = 0.0

    def __contains__(self, consent_id: UUID) -> bool:
        return (consent_id.int >> 64) in self._until

    def __len__(self) -> int:
        return len(self._until)

    def add(self, superseded: Iterable[tuple[UUID, datetime]]) -> None:
        """Consent ids and when they were superseded: a cookie of that id was given before then."""
        with self._lock:
            for consent_id, at in superseded:
                self._until[consent_id.int >> 64] = at.timestamp() + self._lifetime
            now = self._clock().timestamp()
            if now >= self._next_purge:
                self._purge(now)

    def _purge(self, now: float) -> None:
        self._until = {key: until for key, until in self._until.items() if until > now}
        self._next_purge = now + min(3600.0, self._lifetime / 10)
