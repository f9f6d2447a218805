"""What koekje knows about the visitor of one request: ``request.scope["koekje"]``."""

from __future__ import annotations

import hashlib
import re
import secrets
from functools import lru_cache
from uuid import UUID

from .consent import Consent
from .geo import GeoLookup

_VID = re.compile(r"[A-Za-z0-9_-]{22}")


def new_visitor_cookie() -> str:
    """A random visitor id (128 bits) for the ``koekje_vid`` cookie."""
    return secrets.token_urlsafe(16)


def visitor_id(cookie_value: str | None) -> UUID | None:
    """The id stored for a visitor: a hash of the cookie's random value, so the stored id cannot be
    turned back into a cookie that reads the visitor's data. None for a missing or malformed value."""
    if cookie_value is None or not _VID.fullmatch(cookie_value):
        return None
    return _hashed(cookie_value)


@lru_cache(maxsize=8192)
def _hashed(cookie_value: str) -> UUID:
    """Cached (only well-formed, 22-character values get here): a returning visitor costs a lookup."""
    return UUID(bytes=hashlib.sha256(cookie_value.encode("ascii")).digest()[:16])


class Visitor:
    """The visitor's consent, and their region (looked up only when asked for)."""

    __slots__ = ("_geo", "_region", "address", "consent", "gpc", "id")

    def __init__(
        self, consent: Consent | None, visitor_id: UUID | None, address: str | None, geo: GeoLookup, gpc: bool
    ) -> None:
        self.consent = consent
        # Only with analytics consent: without it there is no identifier at all.
        self.id = visitor_id if consent is not None and consent.allows("analytics") else None
        self.gpc = gpc
        self.address = address  # the full client address: in memory only, never stored or logged
        self._geo = geo
        self._region: str | bool | None = False

    def allows(self, category: str) -> bool:
        return self.consent is not None and self.consent.allows(category)

    @property
    def region(self) -> str | None:
        """ISO country code, or None when unknown (then the strictest rules apply)."""
        if self._region is False:
            self._region = self._geo.country(self.address)
        return self._region if isinstance(self._region, str) else None

    def __repr__(self) -> str:
        categories = sorted(self.consent.categories) if self.consent else None
        return f"Visitor(consent={categories}, id={self.id})"
