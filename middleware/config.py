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

import msgspec

from koekje.analytics import DashboardSettings, RecorderSettings, StoreSettings
from koekje.banner import available_languages

from .topics import TOPIC_NAME

SECRET_ENV = "KOEKJE_SECRET_KEY"  # noqa: S105 (the variable's name, not a secret)
DSN_ENV = "KOEKJE_CLICKHOUSE_DSN"
MIN_SECRET_LENGTH = 32
# The categories the banner has texts for; "necessary" is implied and cannot be refused.
KNOWN_CATEGORIES = ("analytics", "personalization", "marketing")
_COOKIE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the setting and what to do."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class SiteSection(_Section, frozen=True):
    id: str = "default"
    prefix: str = "/_koekje"
    timezone: str = "Europe/Amsterdam"
    # Reverse proxies whose X-Forwarded-For header is believed (CIDRs). Empty: use the peer address.
    trusted_proxies: tuple[str, ...] = ()
    # Mark cookies Secure. Unset: Secure exactly when the request came over https.
    secure_cookies: bool | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"(/[A-Za-z0-9_.-]+)+", self.prefix):
            raise ValueError(f"site.prefix must look like '/_koekje', not {self.prefix!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.id):
            raise ValueError("site.id must be 1-64 letters, digits, '.', '_' or '-'")
        for network in self.trusted_proxies:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"site.trusted_proxies: {network!r} is not an IP network") from None


class ConsentSection(_Section, frozen=True):
    categories: tuple[str, ...] = KNOWN_CATEGORIES
    # Raise this when the cookie policy changes: every visitor is asked again.
    policy_revision: int = 1
    max_age_days: int = 365
    cookie: str = "koekje_consent"
    visitor_cookie: str = "koekje_vid"

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
        for name in (self.cookie, self.visitor_cookie):
            if not _COOKIE_NAME.fullmatch(name):
                raise ValueError(f"consent cookie name {name!r}: use letters, digits, '_' or '-'")
        if self.cookie == self.visitor_cookie:
            raise ValueError("consent.cookie and consent.visitor_cookie must differ")


class BannerSection(_Section, frozen=True):
    # Languages offered, the first is the default.
    languages: tuple[str, ...] = ("nl", "en")
    # Add the banner's <script> and <link> to every HTML page. Off: put them in your templates yourself.
    inject: bool = True
    privacy_url: str | None = None

    def __post_init__(self) -> None:
        missing = [lang for lang in self.languages if lang not in available_languages()]
        if not self.languages or missing:
            raise ValueError(
                f"banner.languages: koekje has texts for {sorted(available_languages())}, not for {missing}"
            )


class AnalyticsSection(_Section, frozen=True):
    # The embedded store's directory (relative to the config file); ignored when dsn is set.
    data_dir: str = "koekje-data"
    # A ClickHouse server instead of the embedded store, e.g. "https://user@host:8443".
    # The environment variable KOEKJE_CLICKHOUSE_DSN overrides it (keep passwords out of the file).
    dsn: str = ""
    database: str = "koekje"
    raw_retention_days: int = 730
    ledger_retention_days: int = 1095
    auto_migrate: bool = True
    queue_size: int = 10_000
    batch_size: int = 1_000
    flush_interval_seconds: float = 1.0
    # topic -> path prefixes, e.g. implantologie = ["/implantologie", "/en/implantology"]
    topics: dict[str, tuple[str, ...]] = {}

    def __post_init__(self) -> None:
        for topic, prefixes in self.topics.items():
            if not TOPIC_NAME.fullmatch(topic):
                raise ValueError(f"analytics.topics: {topic!r} is not a topic name (lowercase, digits, _ -)")
            for prefix in prefixes:
                if not prefix.startswith("/"):
                    raise ValueError(f"analytics.topics.{topic}: path prefix {prefix!r} must start with '/'")


class GeoSection(_Section, frozen=True):
    # A GeoLite2-Country / DB-IP country .mmdb file. Without one every visitor's region is unknown,
    # and unknown means the strictest (opt-in) rules.
    database: str = ""
    ipv4_prefix: int = 24
    ipv6_prefix: int = 48

    def __post_init__(self) -> None:
        if not 0 <= self.ipv4_prefix <= 24:
            raise ValueError("geo.ipv4_prefix must be between 0 and 24 (at least the last byte is removed)")
        if not 0 <= self.ipv6_prefix <= 48:
            raise ValueError("geo.ipv6_prefix must be between 0 and 48")


class DashboardSection(_Section, frozen=True):
    enabled: bool = True
    # Segments with fewer distinct visitors are not shown (k-anonymity).
    min_visitors: int = 5
    session_hours: int = 12


class Config(_Section, frozen=True):
    site: SiteSection = msgspec.field(default_factory=SiteSection)
    consent: ConsentSection = msgspec.field(default_factory=ConsentSection)
    banner: BannerSection = msgspec.field(default_factory=BannerSection)
    analytics: AnalyticsSection = msgspec.field(default_factory=AnalyticsSection)
    geo: GeoSection = msgspec.field(default_factory=GeoSection)
    dashboard: DashboardSection = msgspec.field(default_factory=DashboardSection)
    # Signing keys, newest last. From the environment (KOEKJE_SECRET_KEY), never from the file.
    secret_keys: tuple[str, ...] = ()
    # Where relative paths in the file are resolved; the file's directory when loaded from one.
    base_dir: str = "."

    def store_settings(self) -> StoreSettings:
        a = self.analytics
        dsn = a.dsn or f"chdb://{(Path(self.base_dir) / a.data_dir).resolve()}"
        return StoreSettings(dsn, a.database, a.raw_retention_days, a.ledger_retention_days)

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
        )

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
        try:
            self.store_settings()
            self.recorder_settings()
            self.dashboard_settings()
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        return self


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``koekje.toml``; secrets (and optionally the DSN) come from ``environ``."""
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
    return msgspec.structs.replace(
        config, secret_keys=keys, analytics=analytics, base_dir=str(path.resolve().parent)
    ).validate()
