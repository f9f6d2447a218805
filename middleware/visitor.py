"""What koekje knows about the visitor of one request: ``request.scope["koekje"]``.

A value: built once before the app runs and never changed behind anyone's back. The full client address is
held here, in memory, for the region lookup; only its truncated prefix ever travels further.
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from starlette.requests import cookie_parser
from starlette.types import Scope

from .consent import Consent
from .geo import GeoLookup
from .ip import Proxies, Truncator
from .profiles import Profiles
from .records import Incoming
from .regions import Mode, RegionRules

# A Cookie header beyond this is not something a browser sends for one site; the rest is not read.
MAX_COOKIE_HEADER = 16 * 1024
_UNSET = object()
# Cookie headers parsed, by their hash: a browser sends the same one on every page of a visit. Only
# headers up to this long are remembered, and only koekje's own values (the site's are not kept).
_MAX_PARSED = 4096
_MAX_REMEMBERED_HEADER = 4096


# Which header is which, in one dictionary lookup per header (a browser sends fifteen or so).
_COOKIE, _GPC, _DNT, _REFERER, _AGENT, _HOST, _PURPOSE, _LANGUAGE = range(8)
_WANTED = {
    b"cookie": _COOKIE,
    b"sec-gpc": _GPC,
    b"dnt": _DNT,
    b"referer": _REFERER,
    b"user-agent": _AGENT,
    b"host": _HOST,
    b"sec-purpose": _PURPOSE,
    b"purpose": _PURPOSE,
    b"x-moz": _PURPOSE,
    b"accept-language": _LANGUAGE,
}


class IncomingReader:
    """Reads a request's headers into an ``Incoming``; ``own`` names the cookies whose values matter."""

    def __init__(self, own: frozenset[str], honor_dnt: bool) -> None:
        self._own = own
        self._honor_dnt = honor_dnt
        self._parsed: dict[int, Mapping[str, str]] = {}

    def __call__(self, scope: Scope) -> Incoming:
        cookie_headers: list[bytes] = []
        gpc = False
        referer = user_agent = host = purpose = b""
        language = None
        wanted = _WANTED
        for name, value in scope["headers"]:
            kind = wanted.get(name)
            if kind is None:
                continue
            if kind == _COOKIE:
                cookie_headers.append(value)
            elif kind == _REFERER:
                referer = value
            elif kind == _AGENT:
                user_agent = value
            elif kind == _HOST:
                host = value
            elif kind == _LANGUAGE:
                language = value.decode("latin-1")
            elif kind == _PURPOSE:
                purpose += value.lower()
            elif kind == _GPC or self._honor_dnt:
                gpc = gpc or value.strip() == b"1"
        raw = cookie_headers[0] if len(cookie_headers) == 1 else b"; ".join(cookie_headers)
        cookies = self._cookies(raw) if raw else {}
        clipped = len(raw) > MAX_COOKIE_HEADER
        return Incoming(cookies, gpc, clipped, referer, user_agent, host, purpose, language)

    def _cookies(self, raw: bytes) -> Mapping[str, str]:
        if len(raw) > _MAX_REMEMBERED_HEADER:
            return self._parse(raw)
        key = hash(raw)  # (keyed per process: nobody can make their header collide with another's)
        cookies = self._parsed.get(key)
        if cookies is None:
            cookies = self._parse(raw)
            if len(self._parsed) >= _MAX_PARSED:
                self._parsed.clear()
            self._parsed[key] = cookies
        return cookies

    def _parse(self, raw: bytes) -> dict[str, str]:
        own = self._own
        parsed = cookie_parser(raw[:MAX_COOKIE_HEADER].decode("latin-1"))
        return {name: value if name in own else "" for name, value in parsed.items()}


class Locator:
    """Where a visitor is: address, truncated prefix, region and the consent mode there. Shared, stateless
    apart from the GeoIP cache."""

    def __init__(self, proxies: Proxies, truncate: Truncator, geo: GeoLookup, rules: RegionRules) -> None:
        self.proxies = proxies
        self.truncate = truncate
        self.geo = geo
        self.rules = rules


class Visitor:
    """The visitor's consent (their decision, or what the region and their browser's signals imply), and
    where they are: worked out only when asked for, so a visitor nobody asks about costs nothing."""

    __slots__ = (
        "_address",
        "_client",
        "_headers",
        "_locator",
        "_prefix",
        "_profiles",
        "_region",
        "_said_scheme",
        "_scheme",
        "consent",
        "gpc",
        "id",
    )

    def __init__(
        self,
        consent: Consent | None,
        *,
        gpc: bool,
        scope: Scope,
        locator: Locator,
        profiles: Profiles | None = None,
    ) -> None:
        self.consent = consent
        self.gpc = gpc
        # The visitor id: exists only with analytics consent, created by the decision that gave it. (Set
        # here, not a property: the capture steps and the page view each read it.)
        self.id: UUID | None = (
            consent.visitor_id if consent is not None and "analytics" in consent.categories else None
        )
        # What the address and scheme are worked out from, not the scope itself: the scope holds this
        # visitor (``scope["koekje"]``), and a cycle would leave every request's garbage to the collector.
        self._client = scope.get("client")
        self._headers = scope.get("headers", ())
        self._said_scheme = scope.get("scheme")
        self._locator = locator
        self._profiles = profiles
        self._address: object = _UNSET
        self._scheme: object = _UNSET
        self._prefix: object = _UNSET
        self._region: object = _UNSET

    @property
    def address(self) -> str | None:
        """The full client address: in memory only, never stored or logged."""
        if self._address is _UNSET:
            self._address = self._locator.proxies.client(self._connection())
        return self._address  # type: ignore[return-value]

    def _connection(self) -> Scope:
        """The scope's part about the connection (made only when the address or scheme is asked for)."""
        return {"client": self._client, "headers": self._headers, "scheme": self._said_scheme}

    @property
    def scheme(self) -> str:
        """``https`` or ``http``, as the visitor used it (https behind a TLS proxy)."""
        if self._scheme is _UNSET:
            self._scheme = self._locator.proxies.scheme(self._connection())
        return self._scheme  # type: ignore[return-value]

    def allows(self, category: str) -> bool:
        return self.consent is not None and self.consent.allows(category)

    def allows_service(self, service: str, category: str) -> bool:
        return self.consent is not None and self.consent.allows_service(service, category)

    def objected(self, category: str) -> bool:
        """Whether the visitor's current decision is an objection (GDPR art. 21) to ``category``
        (``marketing``: direct marketing; ``personalization``). Until they grant it again."""
        consent = self.consent
        return consent is not None and consent.method == "objection" and category not in consent.categories

    @property
    def prefix(self) -> str | None:
        """The truncated address (what may be stored), or None without a usable address."""
        if self._prefix is _UNSET:
            address = self.address
            self._prefix = self._locator.truncate(address) if address else None
        return self._prefix  # type: ignore[return-value]

    @property
    def region(self) -> str | None:
        """ISO 3166 country (or country-subdivision) code, or None when unknown (the strictest rules)."""
        if self._region is _UNSET:
            geo = self._locator.geo
            self._region = geo.region(self.address, self.prefix) if geo.configured else None
        return self._region  # type: ignore[return-value]

    @property
    def country(self) -> str:
        return (self.region or "").partition("-")[0]

    @property
    def mode(self) -> Mode:
        """``opt-in`` or ``opt-out``: which rules apply where the visitor is."""
        return self._locator.rules.mode(self.region)

    def interests(self, n: int = 3) -> list[str]:
        """With personalization consent: the topics of the pages this visitor read most, most first (from
        this process's memory, see ``koekje.middleware.profiles``); without it, nothing."""
        profiles = self._profiles
        return profiles.interests(self.consent, n) if profiles is not None else []

    def seen(self, path: str) -> bool:
        """With personalization consent: whether this visitor has viewed the page at ``path``."""
        profiles = self._profiles
        return profiles is not None and profiles.seen(self.consent, path)

    def with_consent(self, consent: Consent | None) -> Visitor:
        """The same visitor under another consent (a new value; this one is not changed)."""
        other = Visitor(
            consent, gpc=self.gpc, scope=self._connection(), locator=self._locator, profiles=self._profiles
        )
        other._address, other._scheme = self._address, self._scheme
        other._prefix, other._region = self._prefix, self._region
        return other

    def __repr__(self) -> str:
        categories = sorted(self.consent.categories) if self.consent else None
        return f"Visitor(consent={categories}, id={self.id})"
