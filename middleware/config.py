"""koekje's configuration: one TOML file (``koekje.toml``) plus secrets from the environment.

Every section is a strict schema: an unknown key or a wrong type is an error that names the key, so a typo
in a privacy setting never passes silently. Construct :class:`Config` directly in code and tests.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from koekje.analytics import DashboardSettings, RecorderSettings, StoreSettings
from koekje.analytics.spool import check_path
from koekje.banner import available_languages, check_overrides, merged

from .declarations import NECESSARY, CookieRule, Declarations, Service, parse_duration
from .ip import ProxyHeader
from .regions import EU_EEA_UK_CH, US_OPT_OUT_STATES, Mode, RegionRules, check_region_codes
from .topics import TOPIC_NAME

SECRET_ENV = "KOEKJE_SECRET_KEY"  # noqa: S105 (the variable's name, not a secret)
DSN_ENV = "KOEKJE_CLICKHOUSE_DSN"
METRICS_TOKEN_ENV = "KOEKJE_METRICS_TOKEN"  # noqa: S105 (the variable's name, not a token)
MIN_SECRET_LENGTH = 32
MIN_SECRET_SYMBOLS = 12  # distinct characters: a random 32-character key has about 25
# The categories the banner has texts for; "necessary" is implied and cannot be refused.
KNOWN_CATEGORIES = ("analytics", "personalization", "marketing")
_COOKIE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DOMAIN = re.compile(r"\.?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_COOKIE_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,=:@/%-]{0,255}")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the setting and what to do."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class ProcessorSection(_Section, frozen=True):
    """Someone who processes visitor data on the site's behalf (GDPR art. 28), for `koekje notice`."""

    name: str  # e.g. "ClickHouse Inc. (ClickHouse Cloud)"
    purpose: dict[str, str] = {}  # per language: what they do, e.g. "hosts the statistics database"
    location: str = ""  # where the data is, e.g. "EU (Frankfurt)"


class SiteSection(_Section, frozen=True):
    """The site: its name, where koekje's endpoints live, its time zone, and the proxies in front of it."""

    # Stored with each page view and decision, so one store can hold several sites (1-64 letters, digits,
    # '.', '_' or '-').
    id: str = "default"
    # The site's or organisation's name, as the privacy notice (`koekje notice`) says it.
    name: str = ""
    # Processors of visitor data (a hosted ClickHouse, a hosting company), listed in the privacy notice.
    processors: tuple[ProcessorSection, ...] = ()
    # Where koekje's endpoints live (the banner's assets, consent, the dashboard, ...): a path such as
    # "/_koekje" that the site itself does not use.
    prefix: str = "/_koekje"
    # The dashboard's days, and those of the anonymous daily statistics (an IANA time zone name).
    timezone: str = "Europe/Amsterdam"
    # Reverse proxies whose X-Forwarded-For header is believed (CIDRs). Empty: use the peer address.
    trusted_proxies: tuple[str, ...] = ()
    # The header those proxies write: "x-forwarded-for" (with X-Forwarded-Proto) or RFC 7239 "forwarded".
    # Only this one is read: a proxy passes the other through from the client untouched.
    proxy_header: ProxyHeader = "x-forwarded-for"
    # Mark cookies Secure. Unset: Secure exactly when the request came over https.
    secure_cookies: bool | None = None
    # Paths of files that are never pages and never set cookies, such as a StaticFiles mount ("/static"),
    # with everything under them: koekje hands their requests to the app untouched, as if it were not there
    # (no visitor read, no banner, no page views, and no cookie enforcement: list only paths that set
    # none; `koekje audit` reports any cookie set before consent wherever it came from).
    asset_paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"(/[A-Za-z0-9_.-]+)+", self.prefix) or {".", ".."} & set(self.prefix.split("/")):
            raise ValueError(f"site.prefix must look like '/_koekje', not {self.prefix!r}")
        for path in self.asset_paths:
            trimmed = path.rstrip("/")
            if not re.fullmatch(r"(/[^/\s%?#]+)+", trimmed) or {".", ".."} & set(trimmed.split("/")):
                raise ValueError(f"site.asset_paths: {path!r} must be a path such as '/static' (not '/')")
            if _overlaps(trimmed, self.prefix):
                raise ValueError(
                    f"site.asset_paths: {path!r} overlaps koekje's own site.prefix {self.prefix!r}"
                )
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.id):
            raise ValueError("site.id must be 1-64 letters, digits, '.', '_' or '-'")
        for network in self.trusted_proxies:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"site.trusted_proxies: {network!r} is not an IP network") from None


def _overlaps(path: str, other: str) -> bool:
    """Whether one of two paths is the other or lies under it (at a segment boundary)."""
    return path == other or path.startswith(other + "/") or other.startswith(path + "/")


class ServiceSection(_Section, frozen=True):
    """A service visitors may grant on its own (an embedded video, a chat widget), inside its category: the
    banner lists it, ``<script data-service="...">`` and embeds wait for it."""

    category: str  # the category it belongs to: granting the category grants the service
    provider: str = ""  # who provides it, e.g. "Google Ireland Limited"
    title: dict[str, str] = {}  # per language; the service id when absent
    purpose: dict[str, str] = {}  # per language: what it does, as the banner says it
    privacy_url: str | None = None  # the provider's privacy statement, linked from the banner


class CookieSection(_Section, frozen=True):
    """A cookie the site (or a script on it) sets. The banner and the cookie declaration list it; koekje
    removes it from responses to visitors who did not grant its purpose, and expires it when consent is
    withdrawn."""

    name: str  # exact, or a prefix followed by '*' ("_ga_*")
    duration: str  # "session", or e.g. "13 months", "30 days"
    service: str = ""  # the category follows from the service
    category: str = ""  # for a cookie that belongs to no service
    provider: str = ""  # who sets it, e.g. "Google Ireland Limited"
    purpose: dict[str, str] = {}  # per language
    party: Literal["first", "third"] = "first"  # set for this site's own host, or by another site

    def __post_init__(self) -> None:
        parse_duration(self.duration)
        if bool(self.service) == bool(self.category):
            raise ValueError(f"cookie {self.name!r}: give either its service or its category (not both)")


class RegionSection(_Section, frozen=True):
    """Which rules apply where: opt-in (nothing optional before a choice) or opt-out (what
    ``opt_out_defaults`` lists is on until the visitor refuses). The region comes from ``geo.database``."""

    # For known regions that neither list names. Unknown regions (no GeoIP database, an address it does not
    # know) are always opt-in.
    default: Mode = "opt-in"
    # Opt-in regions: ISO 3166-1 country codes, or ISO 3166-2 subdivisions ("US-CA") with a City database.
    # The default: the EU and EEA, the United Kingdom and Switzerland.
    opt_in: tuple[str, ...] = EU_EEA_UK_CH
    # Opt-out regions. The default: the US states whose privacy laws allow opt-out analytics (the docs'
    # region table names each law).
    opt_out: tuple[str, ...] = US_OPT_OUT_STATES
    # In opt-out regions, what is on before the visitor chooses (recorded in the ledger as method "default").
    # GPC (and DNT when honoured) takes marketing and personalization off again.
    opt_out_defaults: tuple[str, ...] = ("analytics",)

    def __post_init__(self) -> None:
        check_region_codes("consent.regions.opt_in", self.opt_in)
        check_region_codes("consent.regions.opt_out", self.opt_out)
        both = sorted(set(self.opt_in) & set(self.opt_out))
        if both:
            raise ValueError(f"consent.regions: {both} are listed both as opt_in and as opt_out")


# The seven Google Consent Mode v2 types and the category (or service) that grants each.
CONSENT_MODE_TYPES = {
    "ad_storage": "marketing",
    "ad_user_data": "marketing",
    "ad_personalization": "marketing",
    "analytics_storage": "analytics",
    "functionality_storage": "personalization",
    "personalization_storage": "personalization",
    "security_storage": NECESSARY,
}


class ConsentModeSection(_Section, frozen=True):
    """Google Consent Mode v2: a default for Google's tags before any script, updated by the banner."""

    # Put gtag('consent', 'default', ...) before any script, and let the banner send 'update' after a choice.
    enabled: bool = False
    # How long tags wait for the banner's update before they act on the default (milliseconds).
    wait_for_update: int = 500
    # Consent Mode type -> the category or service that grants it; unlisted types keep the defaults above.
    types: dict[str, str] = {}

    def __post_init__(self) -> None:
        unknown = sorted(set(self.types) - set(CONSENT_MODE_TYPES))
        if unknown:
            raise ValueError(
                f"consent.google_consent_mode.types: unknown {unknown}; "
                f"the types are {list(CONSENT_MODE_TYPES)}"
            )
        if not 0 <= self.wait_for_update <= 10_000:
            raise ValueError("consent.google_consent_mode.wait_for_update must be 0-10000 (milliseconds)")


class ConsentSection(_Section, frozen=True):
    """What visitors are asked, how long their choice lasts, and what koekje does with the site's cookies."""

    # The purposes offered, of "analytics", "personalization" and "marketing" ("necessary" is implied and
    # cannot be refused); "analytics" must be among them, since it is what koekje records.
    categories: tuple[str, ...] = KNOWN_CATEGORIES
    # Raise this when the cookie policy changes: every visitor is asked again.
    policy_revision: int = 1
    # How long a decision (and the visitor id in it) lasts, in days: at most 396 (13 months, the CNIL's
    # maximum).
    max_age_days: int = 365
    # The consent cookie's name (signed, HttpOnly, strictly necessary).
    cookie: str = "koekje_consent"
    # koekje 0.1 kept the visitor id in a cookie of its own; it now travels in the signed consent cookie,
    # and a cookie of this name is only ever removed.
    visitor_cookie: str = "koekje_vid"
    # The current visit (analytics category, only with that consent): renewed with every recorded page, gone
    # after analytics.visit_timeout_minutes without one.
    visit_cookie: str = "koekje_visit"
    # On https sites the consent cookie is called "__Host-<cookie>": only this host, over https, can set it.
    host_prefix: bool = True
    # What happens to the site's own cookies: "strict" removes undeclared ones too, "report" lets them through
    # and records their names, "off" leaves the site's cookies alone.
    enforce: Literal["strict", "report", "off"] = "report"
    # Where withdrawn cookies are also expired, besides the host itself (e.g. [".example.nl"]).
    cookie_domains: tuple[str, ...] = ()
    # The paths where withdrawn cookies are expired.
    cookie_paths: tuple[str, ...] = ("/",)
    # Also treat "DNT: 1" like Global Privacy Control ("Sec-GPC: 1", always honoured).
    honor_dnt: bool = False
    # Recorded decisions per minute from one (truncated) address prefix; a flood beyond it is refused (429).
    decisions_per_minute: int = 30
    regions: RegionSection = msgspec.field(default_factory=RegionSection)
    google_consent_mode: ConsentModeSection = msgspec.field(default_factory=ConsentModeSection)
    # Services visitors may grant one by one, by id ([consent.services.youtube]).
    services: dict[str, ServiceSection] = {}
    # Every cookie the site sets ([[consent.cookies]], one table per cookie).
    cookies: tuple[CookieSection, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.categories) - set(KNOWN_CATEGORIES)
        if unknown:
            raise ValueError(
                f"consent.categories: unknown {sorted(unknown)}; koekje knows {list(KNOWN_CATEGORIES)} "
                "('necessary' is always on and need not be listed)"
            )
        if "analytics" not in self.categories:
            raise ValueError("consent.categories must include 'analytics': it is what koekje records")
        if not 1 <= self.policy_revision < 2**31:
            raise ValueError("consent.policy_revision must be a positive integer")
        if not 1 <= self.max_age_days <= 396:
            raise ValueError("consent.max_age_days must be between 1 and 396 (13 months, the usual maximum)")
        for name in (self.cookie, self.visitor_cookie, self.visit_cookie):
            if not _COOKIE_NAME.fullmatch(name):
                raise ValueError(f"consent cookie name {name!r}: use letters, digits, '_' or '-'")
            if name.lower().startswith(("__host-", "__secure-")):
                raise ValueError(
                    f"consent cookie name {name!r}: leave out the prefix; koekje adds __Host- on https "
                    "itself (consent.host_prefix), and a prefixed cookie would not be kept on http"
                )
        if len({self.cookie, self.visitor_cookie, self.visit_cookie}) < 3:
            raise ValueError("consent.cookie, consent.visitor_cookie and consent.visit_cookie must differ")
        for domain in self.cookie_domains:
            if not _DOMAIN.fullmatch(domain.lower()) or "." not in domain.strip("."):
                raise ValueError(f"consent.cookie_domains: {domain!r} is not a domain such as '.example.nl'")
        for path in self.cookie_paths:
            if not _COOKIE_PATH.fullmatch(path):
                raise ValueError(f"consent.cookie_paths: {path!r} must be a path starting with '/'")
        if not 1 <= self.decisions_per_minute <= 10_000:
            raise ValueError("consent.decisions_per_minute must be between 1 and 10000")
        defaults = set(self.regions.opt_out_defaults) - set(self.categories)
        if defaults:
            raise ValueError(
                f"consent.regions.opt_out_defaults: {sorted(defaults)} not in consent.categories"
            )
        offered = set(self.categories) | {NECESSARY} | set(self.services)
        for kind, grantor in self.google_consent_mode.types.items():
            if grantor not in offered:
                raise ValueError(
                    f"consent.google_consent_mode.types.{kind}: {grantor!r} is no category or service"
                )
        self.declarations()  # raises, naming the key, for inconsistent services and cookies

    def declarations(
        self, visit_minutes: int = 30, visit_purpose: Mapping[str, str] | None = None
    ) -> Declarations:
        """The declared services and cookies, with koekje's visit cookie (analytics) among them."""
        services = [
            Service(id, s.category, s.provider, s.title, s.purpose, s.privacy_url)
            for id, s in self.services.items()
        ]
        rules = []
        for index, c in enumerate(self.cookies):
            category = c.category
            if c.service:
                service = self.services.get(c.service)
                if service is None:
                    raise ValueError(
                        f"consent.cookies[{index}] ({c.name!r}).service: no service {c.service!r} "
                        "is declared in [consent.services]"
                    )
                category = service.category
            duration = parse_duration(c.duration)
            rules.append(
                CookieRule(
                    c.name, category, c.service or None, c.provider, c.purpose, c.duration, duration, c.party
                )
            )
        own = (self.cookie, f"__Host-{self.cookie}", self.visitor_cookie, self.visit_cookie)
        Declarations(services, rules, categories=self.categories, reserved=own)  # the site's, checked
        visit = CookieRule(
            self.visit_cookie,
            "analytics",
            None,
            "",
            visit_purpose or {lang: merged(lang, None)["visit_cookie"] for lang in available_languages()},
            f"{visit_minutes} minutes",
            visit_minutes * 60,
            "first",
        )
        return Declarations(services, (visit, *rules), categories=self.categories)

    def region_rules(self) -> RegionRules:
        r = self.regions
        return RegionRules(r.default, r.opt_in, r.opt_out)

    def consent_mode_types(self) -> dict[str, str]:
        return {**CONSENT_MODE_TYPES, **self.google_consent_mode.types}


class BannerSection(_Section, frozen=True):
    """The banner: its languages, its wording, and how it gets into the site's pages."""

    # Languages offered, the first is the default.
    languages: tuple[str, ...] = ("nl", "en")
    # Add the banner's <script> and <link> to every HTML page. Off: put them in your templates yourself.
    inject: bool = True
    # The site's privacy statement, linked from the banner: a path on this site ("/privacy") or an address.
    privacy_url: str | None = None
    # A small fixed "cookie settings" button once the visitor has chosen, for sites without a link of their
    # own (any element with data-koekje-open reopens the banner too).
    floating_button: bool = False
    # The site's own wording, per language: any text of koekje's (banner/texts/<lang>.json), e.g.
    # [banner.texts.nl] title = "..." or [banner.texts.en.categories.analytics] description = "...".
    texts: dict[str, dict[str, Any]] = {}

    def __post_init__(self) -> None:
        url = self.privacy_url
        if url is not None and not (re.match(r"https?://[^\s]+$", url) or re.match(r"/(?!/)[^\s]*$", url)):
            raise ValueError(
                f"banner.privacy_url {url[:60]!r}: give a path on this site ('/privacy') "
                "or an http(s) address"
            )
        missing = [lang for lang in self.languages if lang not in available_languages()]
        if not self.languages or missing:
            raise ValueError(
                f"banner.languages: koekje has texts for {sorted(available_languages())}, not for {missing}"
            )
        for lang, overrides in self.texts.items():
            if lang not in self.languages:
                raise ValueError(f"banner.texts.{lang}: not one of banner.languages {list(self.languages)}")
            check_overrides(lang, overrides)


class AnalyticsSection(_Section, frozen=True):
    """Where page views are stored, how long each kind of data is kept, the write buffer and the spool, and
    the topics pages are about."""

    # The embedded store's directory (relative to the config file); ignored when dsn is set.
    data_dir: str = "koekje-data"
    # A ClickHouse server instead of the embedded store, e.g. "https://user@host:8443".
    # The environment variable KOEKJE_CLICKHOUSE_DSN overrides it (keep passwords out of the file).
    dsn: str = ""
    # The ClickHouse database koekje's tables are in.
    database: str = "koekje"
    # A ClickHouse cluster (its name in the servers' remote_servers) whose replicas all keep koekje's data:
    # the database is created ON CLUSTER as a Replicated database and every table is replicated, so any
    # replica answers. One shard only. Needs a server dsn; "" for one server or the embedded store.
    cluster: str = ""
    # How long page views and engagement are kept (days): ClickHouse's TTL removes them after this.
    raw_retention_days: int = 730
    # How long the consent ledger keeps each decision, the proof of consent (days).
    ledger_retention_days: int = 1095
    # Create or update the tables at startup; off: run `koekje migrate` yourself.
    auto_migrate: bool = True
    # The write buffer: page views waiting in memory at most; beyond it they are dropped and counted.
    queue_size: int = 100_000
    # A batch goes to the spool when it has this many rows ...
    batch_size: int = 10_000
    # ... or after this many seconds: a worker killed with SIGKILL loses at most this interval (and a batch
    # it was writing to the spool at that moment).
    flush_interval_seconds: float = 0.25
    # Spooled batches go into the store at most this often (seconds), several in one insert: an insert costs
    # the store much whatever its size. A page view reaches the store within about this plus the flush
    # interval; lower it for a fresher dashboard, at the cost of more inserts.
    load_interval_seconds: float = 1.0
    # Where batches wait for the store (relative to the config file): on disk, so an outage or a crash loses
    # nothing; bounded, so a long outage cannot fill the disk.
    spool_dir: str = "koekje-spool"
    # The spool's bound: beyond it new batches are dropped and counted, so an outage cannot fill the disk.
    spool_max_mb: int = 1024
    # topic -> path prefixes, e.g. implantologie = ["/implantologie", "/en/implantology"]
    topics: dict[str, tuple[str, ...]] = {}
    # Paths never recorded (and everything under them), e.g. ["/admin", "/account"].
    exclude_paths: tuple[str, ...] = ()
    # A visit ends after this long without a recorded page.
    visit_timeout_minutes: int = 30
    # The anonymous daily statistics, which outlive the raw page views (at least as long as those).
    aggregate_retention_days: int = 1825
    # The log of data-subject requests answered (`koekje subject`): the site's proof that it answered.
    request_log_retention_days: int = 1095
    # Why raw data is kept longer than 25 months, if it is (`koekje check` asks for a reason).
    retention_justification: str = ""

    def __post_init__(self) -> None:
        for topic, prefixes in self.topics.items():
            if not TOPIC_NAME.fullmatch(topic):
                raise ValueError(f"analytics.topics: {topic!r} is not a topic name (lowercase, digits, _ -)")
            for prefix in prefixes:
                if not prefix.startswith("/"):
                    raise ValueError(f"analytics.topics.{topic}: path prefix {prefix!r} must start with '/'")
        for prefix in self.exclude_paths:
            if not prefix.startswith("/"):
                raise ValueError(f"analytics.exclude_paths: {prefix!r} must start with '/'")
        if not 1 <= self.visit_timeout_minutes <= 720:
            raise ValueError("analytics.visit_timeout_minutes must be between 1 and 720")
        if not 0.01 <= self.load_interval_seconds <= 60:
            raise ValueError("analytics.load_interval_seconds must be between 0.01 and 60")
        if self.spool_max_mb < 1:  # (found by trying: 0 or below made every consent a 503)
            raise ValueError("analytics.spool_max_mb must be at least 1")


class GeoSection(_Section, frozen=True):
    """The visitor's country, for their region's rules, and how much of their address is kept."""

    # A GeoLite2-Country / DB-IP country .mmdb file. Without one every visitor's region is unknown,
    # and unknown means the strictest (opt-in) rules.
    database: str = ""
    # The bits of an IPv4 address kept (at most 24): the rest is zeroed before anything keeps it.
    ipv4_prefix: int = 24
    # The bits of an IPv6 address kept (at most 48).
    ipv6_prefix: int = 48

    def __post_init__(self) -> None:
        if not 0 <= self.ipv4_prefix <= 24:
            raise ValueError("geo.ipv4_prefix must be between 0 and 24 (at least the last byte is removed)")
        if not 0 <= self.ipv6_prefix <= 48:
            raise ValueError("geo.ipv6_prefix must be between 0 and 48")


class MetricsSection(_Section, frozen=True):
    """Prometheus metrics: queue, spool, page views recorded and dropped by reason, decisions."""

    # Prometheus metrics at <prefix>/metrics. Off: the endpoint does not exist.
    enabled: bool = False
    # Who may read them: client networks (CIDRs), and/or the bearer token in KOEKJE_METRICS_TOKEN.
    allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

    def __post_init__(self) -> None:
        for network in self.allow:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"metrics.allow: {network!r} is not an IP network") from None


class DashboardSection(_Section, frozen=True):
    """The marketers' dashboard at <prefix>/dashboard/."""

    # Serve the dashboard; off: it does not exist.
    enabled: bool = True
    # Segments with fewer distinct visitors are not shown (k-anonymity).
    min_visitors: int = 5
    # How long a login lasts (hours); logging out ends it on the server at once.
    session_hours: int = 12
    # A page waits this long for the store, then says it is not available (503) instead of holding a thread.
    store_timeout_seconds: float = 10.0
    # Client networks (CIDRs) from which the dashboard can be reached at all; empty: any.
    allow: tuple[str, ...] = ()


class Config(_Section, frozen=True):
    site: SiteSection = msgspec.field(default_factory=SiteSection)
    consent: ConsentSection = msgspec.field(default_factory=ConsentSection)
    banner: BannerSection = msgspec.field(default_factory=BannerSection)
    analytics: AnalyticsSection = msgspec.field(default_factory=AnalyticsSection)
    geo: GeoSection = msgspec.field(default_factory=GeoSection)
    dashboard: DashboardSection = msgspec.field(default_factory=DashboardSection)
    # Signing keys, newest last. From the environment (KOEKJE_SECRET_KEY), never from the file.
    secret_keys: tuple[str, ...] = ()
    metrics: MetricsSection = msgspec.field(default_factory=MetricsSection)
    # The metrics' bearer token, from the environment (KOEKJE_METRICS_TOKEN), never from the file.
    metrics_token: str = ""
    # Where relative paths in the file are resolved; the file's directory when loaded from one.
    base_dir: str = "."

    def declarations(self) -> Declarations:
        """The site's services and cookies, and koekje's own visit cookie in the site's wording."""
        purposes = {
            lang: merged(lang, self.banner.texts.get(lang))["visit_cookie"] for lang in available_languages()
        }
        return self.consent.declarations(self.analytics.visit_timeout_minutes, purposes)

    def store_settings(self) -> StoreSettings:
        a = self.analytics
        dsn = a.dsn or f"chdb://{(Path(self.base_dir) / a.data_dir).resolve()}"
        return StoreSettings(
            dsn,
            a.database,
            a.raw_retention_days,
            a.ledger_retention_days,
            a.aggregate_retention_days,
            self.site.timezone,
            a.request_log_retention_days,
            a.cluster,
        )

    def recorder_settings(self) -> RecorderSettings:
        a = self.analytics
        return RecorderSettings(a.queue_size, a.batch_size, a.flush_interval_seconds)

    def dashboard_settings(self) -> DashboardSettings:
        return DashboardSettings(
            site=self.site.id,
            timezone=self.site.timezone,
            min_visitors=self.dashboard.min_visitors,
            session_hours=self.dashboard.session_hours,
            secure_cookies=self.site.secure_cookies,
            store_timeout_seconds=self.dashboard.store_timeout_seconds,
            allow=self.dashboard.allow,
        )

    def spool_path(self) -> Path:
        return (Path(self.base_dir) / self.analytics.spool_dir).resolve()

    def geo_database(self) -> Path | None:
        return Path(self.base_dir, self.geo.database).resolve() if self.geo.database else None

    def validate(self) -> Config:
        """Check what the schema cannot: secrets and the settings built from several sections."""
        if not self.secret_keys:
            raise ConfigError(
                f"no secret key: set {SECRET_ENV} to a long random value, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` "
                "(a comma-separated list rotates keys, newest last)"
            )
        if any(len(key) < MIN_SECRET_LENGTH for key in self.secret_keys):
            raise ConfigError(f"each key in {SECRET_ENV} must have at least {MIN_SECRET_LENGTH} characters")
        if self.metrics_token and len(self.metrics_token) < MIN_SECRET_LENGTH:
            raise ConfigError(f"{METRICS_TOKEN_ENV} must have at least {MIN_SECRET_LENGTH} characters")
        if any(len(set(key)) < MIN_SECRET_SYMBOLS for key in self.secret_keys):
            raise ConfigError(
                f"a key in {SECRET_ENV} repeats a few characters: use a random value, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        try:
            self.store_settings()
            self.recorder_settings()
            self.dashboard_settings()
            check_path(self.spool_path())
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        return self


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None, *, validate: bool = True
) -> Config:
    """Read and validate ``koekje.toml``; secrets (and optionally the DSN) come from ``environ``. With
    ``validate=False`` the file is still checked key by key, but not the secrets and the settings built
    from several sections (:meth:`Config.validate`): for a tool that reads only the declarations, such as
    ``koekje audit`` run where the site's secrets are not."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the koekje configuration {str(path)!r}: {exc.strerror}") from None
    try:
        config = msgspec.toml.decode(raw, type=Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if config.secret_keys:
        raise ConfigError(f"{path}: do not put secret keys in the file; set {SECRET_ENV} in the environment")
    keys = tuple(key.strip() for key in environ.get(SECRET_ENV, "").split(",") if key.strip())
    analytics = config.analytics
    if environ.get(DSN_ENV):
        analytics = msgspec.structs.replace(analytics, dsn=environ[DSN_ENV])
    if config.metrics_token:
        raise ConfigError(f"{path}: do not put the metrics token in the file; set {METRICS_TOKEN_ENV}")
    config = msgspec.structs.replace(
        config,
        secret_keys=keys,
        analytics=analytics,
        metrics_token=environ.get(METRICS_TOKEN_ENV, "").strip(),
        base_dir=str(path.resolve().parent),
    )
    return config.validate() if validate else config
