"""``audit()``: one audit of a site from start to report, the entry point of ``koekje audit`` and of tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from koekje.middleware import __version__
from koekje.middleware.config import Config
from koekje.middleware.declarations import NECESSARY, CookieRule, Declarations

from .browser import INSTALL_HINT, AuditUnavailable
from .evidence import Report
from .rules import findings
from .site import Site

MAX_PAGES = 500


@dataclass(frozen=True, slots=True)
class AuditOptions:
    pages: int = 10  # the start page included
    lang: str | None = None  # the browser's language; None: the site's first banner language
    per_category: bool = False  # also one visitor per optional category
    # Hosts (and their subdomains) that count as the site's own, e.g. its CDN: requests to them are no
    # third-party requests.
    allow_hosts: tuple[str, ...] = ()
    # Host name -> address, for the browser's resolver (curl's --resolve): a staging server under the site's
    # real name, or a second local host name standing in for a third party in tests.
    resolve: Mapping[str, str] = field(default_factory=dict)
    chromium: str | None = None  # the browser's executable; None: the system's Chromium
    dwell_seconds: float = 0.0  # extra time on each page after the network went quiet
    timeout_seconds: float = 30.0  # for each page load and click
    # A page is looked at once its network has been quiet this long (tests of small local sites shorten it).
    quiet_seconds: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.pages <= MAX_PAGES:
            raise ValueError(f"--pages must be between 1 and {MAX_PAGES}")
        if not 0 <= self.dwell_seconds <= 60:
            raise ValueError("--dwell must be between 0 and 60 seconds")
        if not 0 <= self.quiet_seconds <= 10:
            raise ValueError("the quiet time must be between 0 and 10 seconds")
        if not 1 <= self.timeout_seconds <= 300:
            raise ValueError("the timeout must be between 1 and 300 seconds")


def audit(
    url: str,
    config: Config,
    options: AuditOptions | None = None,
    *,
    declaration: str = "the configuration given",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Report:
    """Crawl ``url`` in Chromium as each kind of visitor and hold what they were given against ``config``'s
    declarations. AuditUnavailable when it cannot run (no Playwright, no browser, the site does not load)."""
    options = options or AuditOptions()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise AuditUnavailable(INSTALL_HINT) from None
    from .browser import launch
    from .visits import Browsing, plans

    declarations = declarations_of(config)
    site = Site(url, prefix=config.site.prefix, allow_hosts=options.allow_hosts)
    lang = options.lang or config.banner.languages[0]
    started = clock()
    with sync_playwright() as playwright:
        browser = launch(playwright, options.chromium, options.resolve)
        try:
            browsing = Browsing(
                browser,
                site,
                lang=lang,
                consent_cookies=consent_cookies(config),
                timeout_seconds=options.timeout_seconds,
                dwell_seconds=options.dwell_seconds,
                quiet_seconds=options.quiet_seconds,
            )
            pages, banner = browsing.first_look(options.pages)
            visitors = tuple(
                browsing.visit(plan, pages)
                for plan in plans(declarations.categories, per_category=options.per_category)
            )
            browser_version = f"Chromium {browser.version}"
        finally:
            browser.close()
    return Report(
        site=site.start,
        started=started,
        finished=clock(),
        koekje_version=koekje_version(),
        browser=browser_version,
        lang=lang,
        declaration=declaration,
        pages=tuple(pages),
        banner=banner,
        visitors=visitors,
        findings=tuple(findings(visitors, banner, declarations)),
        declared={
            cookie.name: declared_as(declarations, cookie.name)
            for visitor in visitors
            for cookie in visitor.cookies
        },
    )


def declared_as(declarations: Declarations, name: str) -> str:
    """How koekje.toml declares a cookie, in a few words; "" when it does not."""
    rule = declarations.rule(name)
    if rule is None:
        return ""
    service = f", service {rule.service}" if rule.service else ""
    pattern = f" (as {rule.name})" if rule.pattern else ""
    return f"{rule.category}{service}, {rule.duration}{pattern}"


def consent_cookies(config: Config) -> tuple[str, ...]:
    """The names koekje's consent cookie goes by (``__Host-`` prefixed on https)."""
    return (config.consent.cookie, f"__Host-{config.consent.cookie}")


def declarations_of(config: Config) -> Declarations:
    """The site's declarations and koekje's own cookies: the consent cookie (strictly necessary, as long as
    ``consent.max_age_days``) besides the visit cookie the configuration declares already."""
    site = config.declarations()
    days = config.consent.max_age_days
    own = tuple(
        CookieRule(name, NECESSARY, None, "koekje", {}, f"{days} days", days * 86400, "first")
        for name in consent_cookies(config)
    )
    return Declarations(site.services.values(), (*own, *site.cookies), categories=config.consent.categories)


def koekje_version() -> str:
    return __version__
