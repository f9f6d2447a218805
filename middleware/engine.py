"""The consent engine: which consent applies to a request, and recording decisions.

A visitor's consent is their own decision when the signed cookie carries one. Without one, the rules of
their region decide (opt-in: nothing; opt-out: the configured defaults), and Global Privacy Control refuses
marketing and personalization until the visitor grants them by hand. Such *implicit* decisions are recorded
once per visitor (method ``default`` or ``gpc``), with a cookie so that the next request knows.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future

from starlette.types import Scope

from koekje.analytics import Clock
from koekje.analytics.ledger import IMPLICIT_METHODS, ConsentRecord, Method
from koekje.analytics.ledger_writer import LedgerWriter
from koekje.analytics.ratelimit import PrefixBudget

from .config import ConsentSection
from .consent import Consent, ConsentCookies, Revocations
from .cookies import delete_cookie, set_cookie
from .declarations import Declarations
from .ip import Truncator
from .profiles import Profiles
from .records import Incoming
from .regions import OPT_OUT
from .visitor import IncomingReader, Locator, Visitor

# What GPC (and DNT, when honoured) refuses.
GPC_REFUSES = frozenset({"marketing", "personalization"})
HOST_PREFIX = "__Host-"
Header = tuple[bytes, bytes]


class DecisionRefused(Exception):
    """Too many recorded decisions from this address prefix just now."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many decisions from this network; try again in {retry_after} s")
        self.retry_after = retry_after


class ConsentEngine:
    def __init__(
        self,
        settings: ConsentSection,
        declarations: Declarations,
        codec: ConsentCookies,
        revocations: Revocations,
        locator: Locator,
        ledger: LedgerWriter,
        texts_hash: Callable[[str], str],
        clock: Clock,
        *,
        secure_cookies: bool | None,
        profiles: Profiles | None = None,
    ) -> None:
        self._settings = settings
        self._declarations = declarations
        self.codec = codec
        self.revocations = revocations
        self.locator = locator
        self._ledger = ledger
        self._texts_hash = texts_hash
        self._clock = clock
        self._secure_setting = secure_cookies
        self.profiles = profiles if profiles is not None else Profiles()  # (an empty one is falsy)
        # Decisions are budgeted per network, independent of how much of the address is stored: per /24 for
        # IPv4 and /48 for IPv6, and (since one site may hold many /48s) per IPv6 /32 at eight times that.
        self._budget = PrefixBudget(settings.decisions_per_minute)
        self._wide_budget = PrefixBudget(settings.decisions_per_minute * 8)
        self._network = Truncator(24, 48)
        self._wide_network = Truncator(24, 32)
        self._defaults = frozenset(settings.regions.opt_out_defaults)
        self._max_age = settings.max_age_days * 86400
        self.name = settings.cookie
        self._host_name = HOST_PREFIX + settings.cookie
        self.counts: Counter[str] = Counter()
        self.incoming = IncomingReader(self.own_cookie_names(), settings.honor_dnt)

    # -- per request --------------------------------------------------------------------------------------

    def read(self, scope: Scope) -> tuple[Visitor, Incoming]:
        """The visitor as their cookie and signals say, before any implicit decision."""
        incoming = self.incoming(scope)
        consent = self.cookie_consent(incoming, scope)
        visitor = Visitor(
            consent, gpc=incoming.gpc, scope=scope, locator=self.locator, profiles=self.profiles
        )
        return visitor, incoming

    def implied(self, visitor: Visitor) -> Consent | None:
        """A decision the visitor's region and signals imply that their cookie does not carry yet (to be
        recorded with the page), or None."""
        current = visitor.consent
        if current is None:
            if visitor.gpc:
                method, base = Method.GPC, self._defaults if visitor.mode == OPT_OUT else frozenset()
            elif self.locator.geo.configured and visitor.mode == OPT_OUT:
                method, base = Method.DEFAULT, self._defaults
            else:
                return None  # opt-in and no signal: nothing is granted, nothing to record
            categories = base - GPC_REFUSES if visitor.gpc else base
            vid = uuid.uuid4() if "analytics" in categories else None
            return self.codec.new(categories, uuid.uuid4(), method=method, visitor_id=vid, gpc=visitor.gpc)
        if visitor.gpc and not current.gpc:
            # A decision made before the browser sent GPC: the signal takes back what it refuses.
            refused = self._refused_services(current)
            if current.categories & GPC_REFUSES or refused:
                categories = current.categories - GPC_REFUSES
                return self.codec.new(
                    categories,
                    uuid.uuid4(),
                    method=Method.GPC,
                    services=current.services - refused,
                    visitor_id=current.visitor_id,
                    decided=current.decided,
                    gpc=True,
                )
        return None

    def _refused_services(self, consent: Consent) -> frozenset[str]:
        services = self._declarations.services
        return frozenset(s for s in consent.services if s in services and services[s].category in GPC_REFUSES)

    def cookie_consent(self, incoming: Incoming, scope: Scope) -> Consent | None:
        """The decision in the request's consent cookie, unless forged, expired or superseded.

        On https the cookie is ``__Host-`` prefixed, which a sibling subdomain or a network attacker cannot
        plant. Under the plain name there, only a cookie from before the prefix existed (koekje 0.1, no
        decision time of its own) still counts, to be moved over: anyone could plant a newer one."""
        cookies = incoming.cookies
        if not cookies:
            return None
        value = cookies.get(self._host_name)
        plain = value is None
        if plain:
            value = cookies.get(self.name)
        consent = self.codec.loads(value)
        if consent is None:
            return None
        if plain and not consent.legacy and self._settings.host_prefix and self._secure_scope(scope):
            self.counts["plain_cookie_on_https"] += 1
            return None
        if consent.id in self.revocations:
            self.counts["superseded_cookie"] += 1
            return None
        return consent

    def _secure_scope(self, scope: Scope) -> bool:
        if self._secure_setting is not None:
            return self._secure_setting
        return self.locator.proxies.scheme(scope) == "https"

    # -- decisions ----------------------------------------------------------------------------------------

    def record(
        self,
        visitor: Visitor,
        consent: Consent,
        lang: str,
        *,
        previous: Consent | None,
        wait: bool,
        charge: bool = True,
    ) -> Future[None] | None:
        """Hand a decision to the ledger; ``previous`` stops counting at once, recorded or not. With
        ``charge``, the decision spends its network's budget and raises DecisionRefused when that is used
        up; a narrowing of an earlier decision need not (each needs a budgeted grant before it). With
        ``wait``, the future resolves once the row is durable."""
        if previous is not None:
            self.revocations.add([(previous.id, self._clock())])
        if charge:
            self._charge(visitor)
        self.profiles.carry(previous, consent)
        record = ConsentRecord(
            consent_id=consent.id,
            previous_id=previous.id if previous else None,
            ts=consent.given_at,
            visitor_id=consent.visitor_id,
            categories=tuple(sorted(consent.categories)),
            services=tuple(sorted(consent.services)),
            policy_revision=consent.revision,
            lang=lang,
            method=consent.method,
            texts_hash=self._texts_hash(lang) if consent.method not in IMPLICIT_METHODS else "",
            country=visitor.country,
            ip_prefix=visitor.prefix or "",
            gpc=visitor.gpc,
        )
        self.counts[f"decision_{consent.method}"] += 1
        return self._ledger.submit(record, wait=wait)

    def _charge(self, visitor: Visitor) -> None:
        address = visitor.address
        network = self._network(address) if address else None
        wide = self._wide_network(address) if address else None
        budgets = [(self._budget, network)]
        if wide != network:
            budgets.append((self._wide_budget, wide))
        for budget, key in budgets:
            if not budget.take(key):
                self.counts["decision_flood"] += 1
                raise DecisionRefused(budget.retry_after(key))

    def secure(self, visitor: Visitor) -> bool:
        return visitor.scheme == "https" if self._secure_setting is None else self._secure_setting

    def cookie_headers(self, consent: Consent, visitor: Visitor, incoming: Incoming) -> list[Header]:
        """Set-Cookie for a decision: ``__Host-<name>`` on https (the plain name of koekje 0.1 is removed
        then), the plain name otherwise; and the retired visitor-id cookie goes."""
        secure = self.secure(visitor)
        value = self.codec.dumps(consent)
        if secure and self._settings.host_prefix:
            headers = [set_cookie(HOST_PREFIX + self.name, value, max_age=self._max_age, secure=True)]
            if self.name in incoming.cookies:
                headers.append(delete_cookie(self.name, secure=True))
        else:
            headers = [set_cookie(self.name, value, max_age=self._max_age, secure=secure)]
        if self._settings.visitor_cookie in incoming.cookies:
            headers.append(delete_cookie(self._settings.visitor_cookie, secure=secure))
        if self._settings.visit_cookie in incoming.cookies and not consent.allows("analytics"):
            headers.append(delete_cookie(self._settings.visit_cookie, secure=secure))
        return headers

    def upkeep_headers(self, visitor: Visitor, incoming: Incoming) -> list[Header]:
        """On any page: move a valid consent cookie to its ``__Host-`` name on https (its decision time is
        kept, so it lasts no longer), remove koekje 0.1's visitor-id cookie, and a visit cookie that
        statistics no longer allow (whatever ``consent.enforce`` says: it is koekje's own)."""
        consent, cookies = visitor.consent, incoming.cookies
        legacy_name = self.name in cookies and self._host_name not in cookies
        retired = self._settings.visitor_cookie in cookies
        stale_visit = self._settings.visit_cookie in cookies and not visitor.allows("analytics")
        if not (legacy_name or retired or stale_visit):  # the common case: nothing to do, no scheme needed
            return []
        secure = self.secure(visitor)
        if consent is not None and legacy_name and secure and self._settings.host_prefix:
            return self.cookie_headers(consent, visitor, incoming)
        headers = [delete_cookie(self._settings.visitor_cookie, secure=secure)] if retired else []
        if stale_visit:
            headers.append(delete_cookie(self._settings.visit_cookie, secure=secure))
        return headers

    def own_cookie_names(self) -> frozenset[str]:
        """The cookies koekje sets and removes itself (enforcement of the site's cookies leaves them be)."""
        return frozenset({self.name, HOST_PREFIX + self.name, self._settings.visit_cookie})
