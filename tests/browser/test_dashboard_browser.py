"""The dashboard in real Chromium: logging in, every view with a month of traffic, a filter that changes the
numbers as a count by hand says it should, visitors' own text shown as text, axe-core, and screenshots."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from urllib.request import urlopen
from zoneinfo import ZoneInfo

import pytest
from browsing import AXE, DESKTOP_CHROME, VIEWPORTS, LiveSite, serve, violations
from playwright.sync_api import Browser, Dialog, Page, Playwright, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from support import ShiftedClock, demo_config

from koekje.analytics import Role
from koekje.demo.traffic import fill_if_empty
from koekje.middleware import Config
from koekje.middleware.config import DashboardSection
from koekje.middleware.topics import TopicRules

pytestmark = pytest.mark.browser

PASSWORD = "dashboard browser test 1"
VIEWS = {"overview": "/", "topics": "/topics", "pages": "/pages"}
# The tables a month of the demo's sample traffic fills (it has no campaigns, and few sources per topic).
FILLED = {
    "overview": ["topics", "sources", "countries", "devices"],
    "topics": ["topics", "topic-country", "topic-device", "topic-pages", "co-interest"],
    "pages": ["pages", "entry-pages", "exit-pages"],
}
# What visitors can put in what the dashboard shows: a path, UTM values (the referrer is checked on capture).
PAYLOAD_PATH = "/cursussen/<img src=x onerror=window.__xss=1>"
PAYLOAD_CAMPAIGN = '"><script>window.__xss=2</script>'
PAYLOAD_SOURCE = "<svg onload=window.__xss=3>"


async def any_page(request: Request) -> HTMLResponse:
    request.state.koekje_topics = ["cursussen"]
    return HTMLResponse("<!doctype html><html><head><title>x</title></head><body><p>page</p></body></html>")


@pytest.fixture
def clock() -> ShiftedClock:
    """The site's clock: now, until a test moves it (today is left out of reports until it is over)."""
    return ShiftedClock()


@pytest.fixture
def site(make_config: Callable[..., Config], clock: ShiftedClock) -> Iterator[LiveSite]:
    app = Starlette(routes=[Route("/{path:path}", any_page)])
    with serve(demo_config(make_config(dashboard=DashboardSection(min_visitors=5))), app, clock) as live:
        urlopen(live.url + "/_koekje/banner.css", timeout=30).close()  # startup done: the store is open
        store = live.runtime.store
        config = live.runtime.config
        # The sample month up to the site's last midnight, not up to now: which of its visitors fall on
        # which day decides which small segments the dashboard may show (min_visitors, and what a remainder
        # would give away), so generated up to the hour of the run, one table had one row at some hours.
        zone = ZoneInfo(config.site.timezone)
        midnight = datetime.combine(clock().astimezone(zone).date(), time(), zone)
        fill_if_empty(store, TopicRules(config.analytics.topics), config.site.id, midnight)
        live.runtime.accounts.add("marketing", PASSWORD, Role.ADMIN)
        yield live


def hostile_visits(playwright: Playwright, live: LiveSite, visitors: int = 6) -> None:
    """Consented visitors, each in their own cookie jar, over real HTTP, with markup in what they send."""
    for _ in range(visitors):
        api = playwright.request.new_context(
            base_url=live.url, extra_http_headers={"User-Agent": DESKTOP_CHROME}
        )
        assert api.post("/_koekje/consent", data={"categories": ["analytics"], "services": []}).ok
        response = api.get(
            PAYLOAD_PATH,
            params={"utm_source": PAYLOAD_SOURCE, "utm_medium": "email", "utm_campaign": PAYLOAD_CAMPAIGN},
            headers={"Referer": "http://<script>window.__xss=4</script>/x"},
        )
        assert response.status == 200
        api.dispose()
    assert live.runtime.flush(timeout=30)


def log_in(page: Page, live: LiveSite) -> None:
    page.goto(live.url + "/_koekje/dashboard/")
    page.get_by_label("User name").fill("marketing")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def kpi(page: Page, title: str) -> int:
    text = (
        page.locator(".kpi", has=page.locator(".kpi-title", has_text=title))
        .locator(".kpi-value")
        .inner_text()
    )
    return int(text.replace(",", ""))


def by_hand(live: LiveSite, first: date, last: date, country: str | None = None) -> tuple[int, int]:
    """Page views and visitors of the days whose (filtered) visitors number min_visitors or more, counted
    here from the raw rows, apart from the dashboard's SQL."""
    store = live.runtime.store
    zone = live.runtime.config.site.timezone
    table = store.table("page_views")
    rows = store.query(
        f"SELECT toDate(ts, '{zone}'), visitor_id, country FROM {table} WHERE site = {{site:String}}",
        {"site": live.runtime.config.site.id},
    )
    k = live.runtime.config.dashboard.min_visitors
    days: dict[date, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for day, visitor, where in rows:
        if first <= day <= last:
            days[day][where].append(visitor)
    views = visitors = 0
    for by_country in days.values():
        if country is not None and country not in counted_countries(by_country, k):
            continue  # the filtered view counts a day only if the countries table counts that country
        wanted = [v for where, vs in by_country.items() if country in (None, where) for v in vs]
        if len(set(wanted)) >= k:
            views, visitors = views + len(wanted), visitors + len(set(wanted))
    return views, visitors


def counted_countries(by_country: dict[str, list[Any]], k: int) -> set[str]:
    """The countries table's rule, worked out here: a country counts with k visitors; if the others hold 1
    to k-1 visitors, the smallest counted one is left out too (and if that is not enough, all)."""
    people = {where: set(visitors) for where, visitors in by_country.items()}
    everyone = set().union(*people.values())
    shown = sorted((len(vs), where) for where, vs in people.items() if len(vs) >= k)
    left_out = everyone - set().union(*(people[w] for _, w in shown))
    if 0 < len(left_out) < k and shown:
        shown = shown[1:]
        left_out = everyone - set().union(*(people[w] for _, w in shown))
        if 0 < len(left_out) < k:
            shown = []
    return {where for _, where in shown}


def test_every_view_renders_and_a_filter_changes_the_numbers_as_counted_by_hand(
    site: LiveSite, browser: Browser, artifacts: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, user_agent=DESKTOP_CHROME)
    page = context.new_page()
    log_in(page, site)
    for name, path in VIEWS.items():
        page.goto(f"{site.url}/_koekje/dashboard{path}?preset=30d")
        for table in FILLED[name]:
            rows = page.locator(f"table[data-table={table}] tbody tr")
            assert rows.count() >= 2 and rows.locator("td.empty").count() == 0, table
        if name != "pages":
            expect(page.locator("svg.chart")).to_be_visible()
            assert page.locator("svg.chart polyline").count() >= 1

    page.goto(f"{site.url}/_koekje/dashboard/?preset=30d")
    period = page.locator(".period").inner_text()
    first, last = (datetime.strptime(d, "%d %B %Y").date() for d in re.findall(r"\d+ \w+ \d{4}", period))
    assert (kpi(page, "Page views"), kpi(page, "Visitors")) == by_hand(site, first, last)
    before = kpi(page, "Page views")
    page.locator("table[data-table=countries]").get_by_role("link", name="NL", exact=True).click()
    expect(page).to_have_url(re.compile(r"country=NL"))
    expect(page.locator(".chip")).to_contain_text("country: NL")
    assert (kpi(page, "Page views"), kpi(page, "Visitors")) == by_hand(site, first, last, "NL")
    assert kpi(page, "Page views") < before
    # The filter is kept when moving to another view, and the URL can be shared.
    page.get_by_role("link", name="Topics", exact=True).click()
    expect(page).to_have_url(re.compile(r"/topics\?.*country=NL"))
    page.locator(".chip").click()  # removes the filter
    expect(page.locator(".chip")).to_have_count(0)
    context.close()


def test_what_visitors_sent_is_shown_as_text_never_run(
    site: LiveSite, browser: Browser, playwright: Playwright, clock: ShiftedClock
) -> None:
    clock.advance(days=1)  # on a day of their own, after the sample traffic
    hostile_visits(playwright, site)
    clock.advance(days=1)  # that day is over: it is in the reports now
    # Without the CSP, so that only escaping stands between the markup and the page.
    context = browser.new_context(user_agent=DESKTOP_CHROME, bypass_csp=True)
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    log_in(page, site)
    page.goto(f"{site.url}/_koekje/dashboard/pages?preset=7d")
    pages = page.locator("table[data-table=pages]")
    expect(pages).to_contain_text(PAYLOAD_PATH)
    expect(page.locator("table[data-table=campaigns]")).to_contain_text(PAYLOAD_CAMPAIGN)
    expect(page.locator("table[data-table=campaigns]")).to_contain_text(PAYLOAD_SOURCE)
    assert page.locator("table img, table script, table svg").count() == 0
    for view in VIEWS.values():
        page.goto(f"{site.url}/_koekje/dashboard{view}?preset=7d")
        assert page.evaluate("window.__xss") is None, view
        page.goto(f"{site.url}/_koekje/dashboard{view}?preset=7d&topic={PAYLOAD_SOURCE}")  # in a filter
        expect(page.locator(".chip")).to_contain_text(PAYLOAD_SOURCE)
        assert page.evaluate("window.__xss") is None, view
    assert dialogs == []
    context.close()


@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_the_views_have_no_axe_violations_and_are_photographed(
    site: LiveSite, browser: Browser, device: str, artifacts: Path
) -> None:
    assert AXE.exists(), "run `make test` (it installs banner/node_modules with `npm ci`)"
    # (axe is added as a script, which the dashboard's CSP would refuse.)
    context = browser.new_context(viewport=VIEWPORTS[device], user_agent=DESKTOP_CHROME, bypass_csp=True)  # type: ignore[arg-type]
    page = context.new_page()
    log_in(page, site)
    for name, path in [
        *VIEWS.items(),
        ("privacy", "/privacy"),
        ("accounts", "/accounts"),
        ("login", "/login"),
    ]:
        page.goto(f"{site.url}/_koekje/dashboard{path}?preset=30d")
        page.locator("details.numbers").evaluate_all("all => all.forEach(d => { d.open = true; })")
        assert violations(page, None) == [], name
        page.screenshot(path=artifacts / f"dashboard-{name}-{device}.png", full_page=True)
    context.close()
