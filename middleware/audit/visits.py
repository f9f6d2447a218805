"""The audit's visitors in the browser: finding the site's pages, looking at the banner as a first-time
visitor sees it, and browsing as a visitor who made no choice, rejected everything, accepted everything, or
granted one category, each choice made by clicking the real banner.

Each visitor gets a fresh browser context (no cookies, no storage), so nothing one of them was given
shows up for another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urljoin, urlsplit

from playwright.sync_api import Error
from playwright.sync_api import TimeoutError as BrowserTimeout

from koekje.middleware.declarations import NECESSARY

from .browser import user_agent
from .evidence import BannerCheck, PageLoad, Screenshot, Visitor
from .recorder import Activity, Recorder
from .site import Site, sitemap_locations

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, FloatRect, Locator, Page, ViewportSize

# koekje's banner (banner/templates/banner.html): one form whose buttons differ by value, the same markup
# with and without JavaScript and in every language, so the audit needs no texts to find them.
BANNER = "[data-koekje-banner]"
CATEGORY = f"{BANNER} input[name=category]"
SERVICE = f"{BANNER} input[name=service]"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# How long a banner may take to appear (banner.js fetches it when the site does not render it into pages),
# and to go once a choice was clicked (the server records the choice first).
BANNER_SECONDS = 5.0
# A page is looked at once its network has been quiet this long (what Playwright calls "networkidle"), or
# after SETTLE_SECONDS regardless: a page that polls never goes quiet.
QUIET_SECONDS = 0.5
SETTLE_SECONDS = 10.0
_SITEMAPS_PER_INDEX = 5


def _button(value: str) -> str:
    return f"{BANNER} button[name=koekje][value={value}]"


@dataclass(frozen=True, slots=True)
class Plan:
    """A visitor to be: who they are in the report and what they choose."""

    name: str
    choice: Literal["none", "reject", "accept", "category"]
    granted: tuple[str, ...]
    category: str = ""


def plans(categories: tuple[str, ...], *, per_category: bool) -> list[Plan]:
    """No choice, reject, accept; with ``per_category`` one visitor for each optional category."""
    optional = tuple(c for c in categories if c != NECESSARY)
    found = [
        Plan("no choice", "none", (NECESSARY,)),
        Plan("rejected all", "reject", (NECESSARY,)),
        Plan("accepted all", "accept", (NECESSARY, *optional)),
    ]
    if per_category:
        found += [Plan(f"granted {c} only", "category", (NECESSARY, c), c) for c in optional]
    return found


class Browsing:
    """One browser, one site: a fresh context for each look at it."""

    def __init__(
        self,
        browser: Browser,
        site: Site,
        *,
        lang: str,
        consent_cookies: tuple[str, ...],
        timeout_seconds: float,
        dwell_seconds: float,
        quiet_seconds: float = QUIET_SECONDS,
    ) -> None:
        self._browser = browser
        self._site = site
        self._lang = lang
        self._consent_cookies = consent_cookies
        self._timeout_ms = timeout_seconds * 1000
        self._dwell_ms = dwell_seconds * 1000
        self._quiet = quiet_seconds

    def first_look(self, limit: int) -> tuple[list[str], BannerCheck]:
        """The start page as a first-time visitor sees it: the banner, and the pages to visit (the start
        page, the site's pages it links to, then those in /sitemap.xml, up to ``limit``).
        AuditUnavailable when the start page does not load: an audit of nothing must not pass."""
        from .browser import AuditUnavailable

        context = self._context()
        try:
            page = context.new_page()
            load = self._load(page, self._site.start, Activity(context))
            if load.status is None or load.status >= 400:
                raise AuditUnavailable(
                    f"{self._site.start} did not load ({load.error or f'HTTP status {load.status}'})"
                )
            links: list[str] = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
            banner = self._banner(page)
            pages = self._site.pages(links, limit)
            if len(pages) < limit:
                pages = self._site.pages([*pages, *self._sitemap(page, "/sitemap.xml", index=True)], limit)
            return pages, banner
        finally:
            context.close()

    def _banner(self, page: Page) -> BannerCheck:
        """The banner on a page for a visitor who has not chosen: its two layers as shown, whether refusing
        is on the first layer, and whether anything is ticked in advance."""
        banner = page.locator(BANNER).first
        if not self._appears(banner):
            shot = Screenshot("The start page for a first-time visitor: no banner", page.screenshot())
            return BannerCheck(found=False, screenshots=(shot,))
        first = Screenshot(
            f"First layer, as a first-time visitor sees it ({_lang(banner)}, "
            f"{VIEWPORT['width']}x{VIEWPORT['height']})",
            page.screenshot(),
        )
        reject = _box(page.locator(_button("reject")).first)
        accept = _box(page.locator(_button("accept")).first)
        choose = page.locator(_button("choose")).first
        shots = [first]
        if choose.count() and choose.is_visible():
            choose.click()
            try:
                page.locator(CATEGORY).first.wait_for(state="visible", timeout=BANNER_SECONDS * 1000)
                shots.append(Screenshot("Second layer, after 'Choose per purpose'", page.screenshot()))
            except BrowserTimeout:
                pass  # no choices to show: the category finding names what is missing
        ticked = page.eval_on_selector_all(
            f"{CATEGORY}, {SERVICE}",
            "boxes => boxes.filter(b => b.checked && !b.disabled).map(b => b.value)",
        )
        offered = page.eval_on_selector_all(CATEGORY, "boxes => boxes.map(b => b.value)")
        return BannerCheck(
            found=True,
            reject_on_first_layer=reject is not None and _in_view(reject),
            reject_size=_size(reject),
            accept_size=_size(accept),
            pre_ticked=tuple(ticked),
            offered=tuple(offered),
            screenshots=tuple(shots),
        )

    def visit(self, plan: Plan, pages: list[str]) -> Visitor:
        """Browse ``pages`` as the visitor of ``plan``, making their choice on the first one."""
        context = self._context()
        try:
            recorder = Recorder(context, self._site)
            page = context.new_page()
            if plan.choice != "none":
                self._load(page, pages[0], recorder.activity)
                problem = self._choose(page, plan, recorder)
                if problem:
                    return Visitor(plan.name, plan.choice, plan.granted, problem=problem)
                # What the choice let run: gated scripts, the landing page's beacon.
                self._settle(page, recorder.activity)
                recorder.observe(page)
            loads = []
            for url in pages:
                recorder.page = url
                loads.append(self._load(page, url, recorder.activity))
                recorder.observe(page)
            return Visitor(
                plan.name,
                plan.choice,
                plan.granted,
                tuple(loads),
                recorder.cookies(),
                recorder.storage(),
                tuple(recorder.requests),
            )
        finally:
            context.close()

    def _choose(self, page: Page, plan: Plan, recorder: Recorder) -> str:
        """Make the plan's choice with the banner as a visitor would; what went wrong, or ''."""
        banner = page.locator(BANNER).first
        if not self._appears(banner):
            return "no banner was shown on the start page, so this visitor could not make their choice"
        first = "choose" if plan.choice == "category" else plan.choice
        if not page.locator(_button(first)).count():
            return f"the banner has no '{first}' button, so this visitor could not make their choice"
        box = f"{CATEGORY}[value='{plan.category}']"
        try:
            if plan.choice == "category":
                # Unfolds in place (koekje's own banner fetches its second layer first), or opens the
                # settings page: the choices are looked for once they are there.
                page.locator(_button("choose")).first.click()
                try:
                    page.locator(box).first.wait_for(state="visible", timeout=BANNER_SECONDS * 1000)
                except BrowserTimeout:
                    return (
                        f"the banner offers no choice for {plan.category}, so this visitor could not grant it"
                    )
                page.locator(box).first.check()
                recorder.requests.clear()  # from here on, what happens happens after the choice
                page.locator(_button("save")).first.click()
            else:
                recorder.requests.clear()
                page.locator(_button(plan.choice)).first.click()
            page.locator(BANNER).first.wait_for(state="hidden", timeout=BANNER_SECONDS * 1000)
        except BrowserTimeout as exc:
            return f"the choice could not be made through the banner ({plan.name}): {_first_line(exc)}"
        if not {cookie["name"] for cookie in page.context.cookies()} & set(self._consent_cookies):
            return f"no consent cookie after the choice ({plan.name}): it would be forgotten on the next page"
        return ""

    def _context(self) -> BrowserContext:
        context = self._browser.new_context(
            locale=self._lang, viewport=VIEWPORT, user_agent=user_agent(self._browser.version)
        )
        context.set_default_timeout(self._timeout_ms)
        return context

    def _load(self, page: Page, url: str, activity: Activity) -> PageLoad:
        try:
            response = page.goto(url)
        except Error as exc:
            return PageLoad(url, None, _first_line(exc))
        self._settle(page, activity)
        return PageLoad(url, response.status if response else None)

    def _settle(self, page: Page, activity: Activity) -> None:
        """Wait until the page's network is quiet: what the page does after loading (trackers, beacons,
        the scripts a choice let run) is done by then. Waiting on the browser lets its events arrive."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while (quiet := activity.quiet_for()) < self._quiet and time.monotonic() < deadline:
            page.wait_for_timeout((self._quiet - quiet) * 1000 + 10)
        if self._dwell_ms:
            page.wait_for_timeout(self._dwell_ms)  # for trackers that wait before they write

    def _appears(self, banner: Locator) -> bool:
        try:
            banner.wait_for(state="visible", timeout=BANNER_SECONDS * 1000)
        except BrowserTimeout:
            return False
        return True

    def _sitemap(self, page: Page, path: str, *, index: bool) -> list[str]:
        url = urljoin(self._site.start, path)
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != self._site.origin:
            return []
        try:
            response = page.goto(url)
        except Error:
            return []
        if response is None or not response.ok:
            return []
        locations, is_index = sitemap_locations(response.text())
        if not is_index:
            return locations
        if not index:
            return []  # an index inside an index: not followed
        return [
            found
            for child in locations[:_SITEMAPS_PER_INDEX]
            for found in self._sitemap(page, child, index=False)
        ]


def _box(locator: Locator) -> FloatRect | None:
    if not locator.count():
        return None
    box = locator.bounding_box()
    return box if box and locator.is_visible() else None


def _size(box: FloatRect | None) -> tuple[float, float] | None:
    return (box["width"], box["height"]) if box else None


def _in_view(box: FloatRect) -> bool:
    """Whether the whole box is inside the viewport, so the visitor sees it without scrolling."""
    return (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= VIEWPORT["width"]
        and box["y"] + box["height"] <= VIEWPORT["height"]
    )


def _lang(banner: Locator) -> str:
    lang = banner.get_attribute("lang")
    return f"language {lang}" if lang else "language not stated"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
