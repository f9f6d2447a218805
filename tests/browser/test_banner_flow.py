"""The visitor and marketer journeys in a real Chromium, against the demo site on uvicorn, on real chDB."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from browsing import DESKTOP_CHROME, LiveSite, banner, cookie_names, serve
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support import ShiftedClock, demo_config, ledger, page_views

from koekje.analytics import Role
from koekje.middleware import Config

pytestmark = pytest.mark.browser

PASSWORD = "browser test password"


def test_reject_then_browse_stores_nothing(live: LiveSite, context: BrowserContext, artifacts: Path) -> None:
    page = context.new_page()
    page.goto(live.url + "/")
    expect(banner(page)).to_be_visible()
    expect(banner(page)).to_have_accessible_name("Uw keuze over cookies")
    page.screenshot(path=artifacts / "banner-nl.png", animations="disabled")
    assert page.evaluate("document.documentElement.dataset.demoAnalytics") is None

    page.get_by_role("button", name="Alles weigeren").click()
    expect(banner(page)).to_be_hidden()
    page.goto(live.url + "/implantologie")
    page.goto(live.url + "/cursussen/implantologie-basis")
    expect(banner(page)).to_be_hidden()  # the choice is remembered

    assert page_views(live.runtime) == []
    [proof] = ledger(live.runtime)
    assert proof["categories"] == ["necessary"] and proof["visitor_id"] is None
    assert cookie_names(context) == {"koekje_consent"}
    assert page.evaluate("document.documentElement.dataset.demoAnalytics") is None


@pytest.fixture
def site_clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
def clocked(make_config: Callable[..., Config], site_clock: ShiftedClock) -> Iterator[LiveSite]:
    """The demo site on a clock the test moves (the dashboard leaves today out until it is over)."""
    with serve(demo_config(make_config()), clock=site_clock) as site:
        yield site


def test_accept_records_later_pages_and_the_dashboard_counts_them(
    clocked: LiveSite, context: BrowserContext, artifacts: Path, site_clock: ShiftedClock
) -> None:
    live = clocked
    page = context.new_page()
    page.goto(live.url + "/en/")
    expect(banner(page)).to_have_accessible_name("Your choice about cookies")
    with page.expect_response("**/_koekje/collect") as landing:  # the page on which consent was given
        page.get_by_role("button", name="Accept all").click()
    assert landing.value.status == 204
    expect(banner(page)).to_be_hidden()
    # The blocked analytics script of the page runs once consent is given.
    expect(page.locator("html")).to_have_attribute("data-demo-analytics", "on")
    assert cookie_names(context) == {"koekje_consent", "koekje_visit"}  # the visitor id is in the first
    assert all(cookie["httpOnly"] for cookie in context.cookies())

    for path in ("/en/implantology", "/implantologie", "/cursussen/implantologie-basis"):
        page.goto(live.url + path)
    views = page_views(live.runtime)
    assert [v["path"] for v in views] == [
        "/en/",  # reported by the banner, exactly once
        "/en/implantology",
        "/implantologie",
        "/cursussen/implantologie-basis",
    ]
    assert views[3]["topics"] == ["cursussen", "implantologie"]  # path rule + the page's own label
    assert {v["ip_prefix"] for v in views} == {"127.0.0.0"}

    live.runtime.accounts.add("marketing", PASSWORD, Role.MARKETER)
    site_clock.advance(days=1)  # the day of those pages is over: the dashboard shows it now
    page.goto(live.url + "/_koekje/dashboard/")
    page.get_by_label("User name").fill("marketing")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    table = page.locator("table[data-table=topics]")
    # page views, visitors (per day), change
    expect(table.get_by_role("row", name="implantologie 3 1 —")).to_be_visible()
    expect(table.get_by_role("row", name="cursussen 1 1 —")).to_be_visible()
    expect(table.get_by_role("row", name="(no topic) 1 1 —")).to_be_visible()
    assert {"koekje_consent", "koekje_visit"} <= cookie_names(context)
    page.screenshot(path=artifacts / "dashboard.png", full_page=True)


def test_withdrawal_is_as_easy_and_stops_capture(
    live: LiveSite, context: BrowserContext, artifacts: Path
) -> None:
    page = context.new_page()
    page.goto(live.url + "/")
    with page.expect_response("**/_koekje/collect"):
        page.get_by_role("button", name="Alles accepteren").click()
    expect(banner(page)).to_be_hidden()  # closed once the server has recorded the choice
    page.goto(live.url + "/mondhygiene")
    assert len(page_views(live.runtime)) == 2  # the landing page (reported by the banner) and this one

    page.get_by_role("link", name="Cookie-instellingen").click()
    expect(banner(page)).to_be_visible()
    statistics = page.get_by_role("checkbox", name="Statistieken")
    expect(statistics).to_be_checked()
    expect(page.get_by_role("checkbox", name="Strikt noodzakelijk")).to_be_disabled()
    page.screenshot(path=artifacts / "banner-settings-nl.png", animations="disabled")
    statistics.uncheck()
    with page.expect_navigation():  # scripts that ran under the withdrawn consent are stopped by a reload
        page.get_by_role("button", name="Mijn keuze opslaan").click()
    expect(banner(page)).to_be_hidden()
    assert cookie_names(context) == {"koekje_consent"}

    page.goto(live.url + "/implantologie")
    assert len(page_views(live.runtime)) == 2
    assert [row["categories"] for row in ledger(live.runtime)].count(
        ["marketing", "necessary", "personalization"]
    ) == 1


def test_withdrawing_what_nothing_on_the_page_used_does_not_reload_it(
    live: LiveSite, context: BrowserContext
) -> None:
    page = context.new_page()
    page.goto(live.url + "/")
    page.get_by_role("button", name="Alles accepteren").click()
    expect(banner(page)).to_be_hidden()
    assert page.evaluate("document.documentElement.dataset.demoAnalytics") == "on"  # its gated script ran
    page.evaluate("window.sameDocument = true")
    page.get_by_role("link", name="Cookie-instellingen").click()
    page.get_by_role("checkbox", name="Personalisatie").uncheck()  # nothing on this page needs it
    with page.expect_response("**/_koekje/consent") as choice:
        page.get_by_role("button", name="Mijn keuze opslaan").click()
    assert choice.value.ok
    expect(banner(page)).to_be_hidden()
    assert page.evaluate("window.sameDocument") is True  # not reloaded
    assert [row["categories"] for row in ledger(live.runtime)][-1] == ["analytics", "marketing", "necessary"]


def test_banner_is_reachable_by_keyboard_first(live: LiveSite, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(live.url + "/")
    expect(banner(page)).to_be_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('.koekje') !== null")
    page.get_by_role("button", name="Per doel kiezen").press("Enter")
    expect(page.get_by_role("checkbox", name="Statistieken")).to_be_focused()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Mijn keuze opslaan").press("Enter")
    expect(banner(page)).to_be_hidden()
    assert [row["categories"] for row in ledger(live.runtime)] == [["analytics", "necessary"]]

    settings = page.get_by_role("link", name="Cookie-instellingen")
    settings.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Uw keuze over cookies")).to_be_focused()
    page.get_by_role("button", name="Alles accepteren").press("Enter")
    expect(banner(page)).to_be_hidden()
    expect(settings).to_be_focused()  # back where the visitor was

    # Closed with Escape, unchanged: back there too (found by a helper: focus fell to the page's body).
    settings.press("Enter")
    expect(page.get_by_role("heading", name="Uw keuze over cookies")).to_be_focused()
    page.keyboard.press("Escape")
    expect(banner(page)).to_be_hidden()
    expect(settings).to_be_focused()


def test_a_marketing_cookie_of_the_site_waits_for_consent_and_goes_with_it(
    live: LiveSite, context: BrowserContext
) -> None:
    """The course pages set an HttpOnly marketing cookie whatever the visitor chose; koekje keeps it out of
    the browser until the newsletter service is granted, and removes it when that is withdrawn."""
    course = live.url + "/cursussen/implantologie-basis"
    page = context.new_page()
    page.goto(course)
    assert "tw_interest" not in cookie_names(context)
    page.get_by_role("button", name="Alles weigeren").click()
    expect(banner(page)).to_be_hidden()
    page.goto(course)
    assert "tw_interest" not in cookie_names(context)

    page.get_by_role("link", name="Cookie-instellingen").click()
    page.get_by_role("button", name="Alles accepteren").click()
    expect(banner(page)).to_be_hidden()
    page.goto(course)
    [interest] = [c for c in context.cookies() if c["name"] == "tw_interest"]
    assert interest["httpOnly"]

    page.get_by_role("link", name="Cookie-instellingen").click()
    page.get_by_role("checkbox", name="Marketing").uncheck()
    # Marketing had run on this page, so withdrawing it reloads the page: wait for that, not race it.
    with page.expect_navigation(), page.expect_response("**/_koekje/consent") as choice:
        page.get_by_role("button", name="Mijn keuze opslaan").click()
    expect(banner(page)).to_be_hidden()
    removals = [h["value"] for h in choice.value.headers_array() if h["name"].lower() == "set-cookie"]
    assert any(v.startswith("tw_interest=;") and "Max-Age=0" in v for v in removals)  # by the choice itself
    assert "tw_interest" not in cookie_names(context)
    page.goto(course)
    assert "tw_interest" not in cookie_names(context)
    assert live.runtime.guard.removed[("tw_interest", "not_granted")] >= 2


def test_settings_clicked_before_the_banner_is_ready_open_it_when_it_is(
    live: LiveSite, context: BrowserContext
) -> None:
    """Found by a flaky run: a "Cookie settings" click before config.json had arrived was lost."""
    page = context.new_page()
    held: list[Any] = []
    page.route("**/_koekje/config.json*", lambda route: held.append(route))  # held back
    with page.expect_request("**/_koekje/config.json*"):
        page.goto(live.url + "/")
    page.get_by_role("link", name="Cookie-instellingen").click()
    expect(banner(page)).to_be_visible()  # the server's first layer, not yet enhanced
    expect(page.get_by_role("checkbox", name="Statistieken")).to_be_hidden()
    held[0].continue_()
    expect(page.get_by_role("checkbox", name="Statistieken")).to_be_visible()  # opened, at the choices


def test_engagement_and_the_js_api(live: LiveSite, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(live.url + "/en/implantology")
    page.evaluate(
        """() => { window.seen = [];
                   koekje.on("change", c => seen.push(["on", c.categories]));
                   document.addEventListener("koekje:change", e => seen.push(["event", e.detail.categories]));
                 }"""
    )
    assert page.evaluate("koekje.get()") is None
    with page.expect_response("**/_koekje/collect"):
        page.get_by_role("button", name="Accept all").click()
    categories = ["necessary", "analytics", "marketing", "personalization"]
    assert page.evaluate("seen") == [["event", categories], ["on", categories]]
    assert page.evaluate("koekje.get().categories") == categories
    page.mouse.wheel(0, 4000)
    page.wait_for_function("window.scrollY > 0")
    # Leaving the page reports how it was read: a beacon sent while the page unloads, which the browser
    # delivers on its own (Playwright does not see it), so the test watches it arrive at the server.
    arrived, submit = threading.Event(), live.runtime.engagement.submit

    def watched(event: Any) -> bool:
        queued = submit(event)
        arrived.set()
        return bool(queued)

    live.runtime.engagement.submit = watched
    page.goto(live.url + "/en/courses")
    assert arrived.wait(30)
    views = page_views(live.runtime)
    assert [v["path"] for v in views] == ["/en/implantology", "/en/courses"]  # the landing page once
    runtime = live.runtime
    rows = runtime.store.query(f"SELECT path, visible_ms, scroll FROM {runtime.store.table('engagement')}")
    assert len(rows) == 1, (rows, runtime.counters()["dropped"])
    [engaged] = rows
    assert engaged[0] == "/en/implantology" and engaged[1] > 0 and engaged[2] == 100


def test_a_single_page_app_reports_its_views(live: LiveSite, context: BrowserContext) -> None:
    page = context.new_page()
    # The site opts in before the banner starts: <html data-koekje-spa>.
    page.add_init_script(
        """document.addEventListener("readystatechange", () =>
             document.documentElement.setAttribute("data-koekje-spa", ""), { once: true });"""
    )
    page.goto(live.url + "/en/")
    with page.expect_response("**/_koekje/collect"):
        page.get_by_role("button", name="Accept all").click()
    # Until its answer: a beacon only sent may reach the server after the next page (seen once in CI).
    with page.expect_response(
        lambda r: r.url.endswith("/_koekje/collect") and "pageview" in (r.request.post_data or "")
    ):
        page.evaluate("history.pushState({}, '', '/en/courses?utm_source=app')")
    page.goto(live.url + "/en/contact")
    views = page_views(live.runtime)
    assert [(v["path"], v["referrer_host"]) for v in views] == [
        ("/en/", ""),
        ("/en/courses", ""),
        ("/en/contact", ""),
    ]


def test_a_single_service_can_be_chosen_and_its_cookies_are_listed(
    live: LiveSite, context: BrowserContext, artifacts: Path
) -> None:
    page = context.new_page()
    page.goto(live.url + "/en/courses/implantology-basics")
    assert "tw_interest" not in cookie_names(context)  # the site set it; koekje removed it
    page.get_by_role("button", name="Choose per purpose").click()
    marketing = page.get_by_role("checkbox", name="Marketing", exact=True)
    newsletter = page.get_by_role("checkbox", name="Newsletter offers (Tandwerk Support)")
    expect(newsletter).not_to_be_checked()
    page.locator(".koekje-category", has=marketing).get_by_text("Cookies used (1)").click()
    expect(page.get_by_role("cell", name="tw_interest")).to_be_visible()
    expect(page.get_by_role("cell", name="Remembers which course you looked at last.")).to_be_visible()
    page.screenshot(path=artifacts / "banner-services-en.png", animations="disabled")
    youtube = page.get_by_role("checkbox", name="YouTube (Google)")
    marketing.check()
    expect(newsletter).to_be_checked()  # the category grants its services
    expect(youtube).to_be_checked()
    youtube.uncheck()
    expect(marketing).not_to_be_checked()  # and is no longer granted whole without one of them
    expect(newsletter).to_be_checked()
    page.get_by_role("button", name="Save my choice").click()
    expect(banner(page)).to_be_hidden()
    [row] = ledger(live.runtime)
    assert (row["categories"], row["services"]) == (["necessary"], ["newsletter"])
    page.goto(live.url + "/en/courses/implantology-basics")
    assert "tw_interest" in cookie_names(context)  # the service's cookie, granted on its own


@contextmanager
def home_page(config: Config, browser: Browser) -> Iterator[Page]:
    """The English home page of the demo served with ``config``, in a browser context of its own."""
    with serve(config) as site:
        context = browser.new_context(user_agent=DESKTOP_CHROME)
        page = context.new_page()
        page.goto(site.url + "/en/")
        yield page
        context.close()


def test_consent_mode_is_updated_after_a_choice(make_config: Callable[..., Config], browser: Browser) -> None:
    config = demo_config(make_config())
    mode = msgspec.structs.replace(config.consent.google_consent_mode, enabled=True)
    config = msgspec.structs.replace(
        config, consent=msgspec.structs.replace(config.consent, google_consent_mode=mode)
    )
    with home_page(config, browser) as page:
        default = page.evaluate("Array.from(dataLayer[0])")
        assert default[:2] == ["consent", "default"] and default[2]["analytics_storage"] == "denied"
        page.get_by_role("button", name="Choose per purpose").click()
        page.get_by_role("checkbox", name="Statistics").check()
        page.get_by_role("button", name="Save my choice").click()
        expect(banner(page)).to_be_hidden()
        update = page.evaluate("Array.from(dataLayer[dataLayer.length - 1])")
        assert update[:2] == ["consent", "update"]
        assert update[2] == {
            "ad_storage": "denied",
            "ad_user_data": "denied",
            "ad_personalization": "denied",
            "analytics_storage": "granted",
            "functionality_storage": "denied",
            "personalization_storage": "denied",
            "security_storage": "granted",
        }


def test_an_embed_waits_for_its_service_and_its_placeholder_grants_just_that(
    live: LiveSite, context: BrowserContext, artifacts: Path
) -> None:
    page = context.new_page()
    page.goto(live.url + "/en/courses/implantology-basics")
    video = page.locator("iframe.video")
    load = page.get_by_role("button", name="Load this content")
    expect(load).to_be_visible()
    expect(page.get_by_text("This content comes from YouTube, which may set cookies.")).to_be_visible()
    expect(video).to_be_hidden()
    assert video.get_attribute("src") is None  # nothing was requested from the embed's site
    page.screenshot(path=artifacts / "embed-placeholder-en.png", full_page=True)
    load.focus()
    page.keyboard.press("Enter")
    expect(video).to_be_visible()
    expect(video).to_have_attribute("src", "/static/video.html")
    expect(video).to_be_focused()  # the keyboard stays where the content now is
    expect(load).to_have_count(0)
    [row] = ledger(live.runtime)
    assert (row["categories"], row["services"], row["method"]) == (["necessary"], ["youtube"], "embed")
    # One embed is no answer to the rest: the visitor is still asked (found by trying: it was recorded as a
    # refusal of everything else, and the banner never came back).
    expect(banner(page)).to_be_visible()
    page.reload()
    expect(banner(page)).to_be_visible()
    expect(page.locator("iframe.video")).to_have_attribute("src", "/static/video.html")  # granted: at once
    expect(page.get_by_role("button", name="Load this content")).to_have_count(0)


def test_the_optional_floating_settings_button(make_config: Callable[..., Config], browser: Browser) -> None:
    config = demo_config(make_config())
    config = msgspec.structs.replace(
        config, banner=msgspec.structs.replace(config.banner, floating_button=True)
    )
    with home_page(config, browser) as page:
        floating = page.locator(".koekje-floating")
        expect(banner(page)).to_be_visible()
        expect(floating).to_have_count(0)  # not before a choice: the banner itself is there
        page.get_by_role("button", name="Reject all").click()
        expect(banner(page)).to_be_hidden()
        expect(floating).to_have_text("Cookie settings")
        page.reload()
        expect(floating).to_be_visible()  # on every page after a choice
        floating.click()
        expect(page.get_by_role("checkbox", name="Statistics")).to_be_visible()
