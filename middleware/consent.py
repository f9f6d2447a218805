"""The visitor's consent and the signed cookie that carries it.

The cookie holds the chosen categories, the policy revision they were given for and the id of the ledger
row that proves them, signed with itsdangerous (keys rotate: a list, newest last). Verified cookie values
are cached, so a returning visitor costs a dict lookup instead of an HMAC.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from itsdangerous import BadSignature, URLSafeTimedSerializer

from koekje.analytics import Clock
from koekje.analytics.web import clock_signer

NECESSARY = "necessary"
MAX_COOKIE_LENGTH = 512
_HEX_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Consent:
    categories: frozenset[str]  # always includes NECESSARY
    revision: int
    id: UUID
    given_at: datetime

    def allows(self, category: str) -> bool:
        return category in self.categories

    def as_json(self) -> dict[str, object]:
        return {
            "categories": sorted(self.categories, key=lambda c: (c != NECESSARY, c)),
            "given_at": self.given_at.isoformat().replace("+00:00", "Z"),
            "id": self.id.hex,
        }


class ConsentCookies:
    def __init__(
        self,
        secret_keys: tuple[str, ...],
        *,
        categories: tuple[str, ...],
        revision: int,
        max_age: timedelta,
        clock: Clock,
        cache_size: int = 4096,
    ) -> None:
        self._serializer = URLSafeTimedSerializer(
            list(secret_keys), salt="koekje.consent", signer=clock_signer(clock)
        )
        self._categories = frozenset(categories)
        self._revision = revision
        self._max_age = max_age
        self._clock = clock
        self._cache: OrderedDict[str, Consent] = OrderedDict()
        self._cache_size = cache_size

    def new(self, categories: frozenset[str], consent_id: UUID) -> Consent:
        """A consent given now for the current policy revision (whole seconds: what the cookie can carry)."""
        now = self._clock().replace(microsecond=0)
        return Consent(categories | {NECESSARY}, self._revision, consent_id, now)

    def dumps(self, consent: Consent) -> str:
        payload = {"c": sorted(consent.categories - {NECESSARY}), "r": consent.revision, "i": consent.id.hex}
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
        categories, revision, consent_id = payload.get("c"), payload.get("r"), payload.get("i")
        if (
            revision != self._revision
            or not isinstance(consent_id, str)
            or not _HEX_ID.fullmatch(consent_id)
            or not isinstance(categories, list)
            or not all(isinstance(c, str) for c in categories)
        ):
            return None
        chosen = frozenset(categories) & self._categories
        return Consent(chosen | {NECESSARY}, revision, UUID(consent_id), signed_at.astimezone(UTC))
