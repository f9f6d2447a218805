"""The banner without JavaScript, and with it no flash and no layout shift: real Chromium, the demo site."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from browsing import DESKTOP_CHROME, LiveSite, banner, cookie_names
from playwright.sync_api import Browser, BrowserContext, expect
from support import ledger, page_views

pytestmark = pytest.mark.browser

COURSE = "/cursussen/implantologie-basis"


@pytest.fixture
def no_js(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1200, "height": 800}, user_agent=DESKTOP_CHROME
    )
    yield context
    context.close()


def test_accept_all_without_javascript_is_recorded_as_a_form(live: LiveSite, no_js: BrowserContext) -> None:
    page = no_js.new_page()
    page.goto(live.url + COURSE + "?ref=x")
    expect(banner(page)).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Alles accepteren").click()
    assert page.url == live.url + COURSE + "?ref=x"  # back where the visitor chose
    expect(banner(page)).to_have_count(0)
    assert "koekje_consent" in cookie_names(no_js)
    [proof] = ledger(live.runtime)
    assert proof["method"] == "form" and proof["lang"] == "nl"
    assert proof["categories"] == ["analytics", "marketing", "necessary", "personalization"]
    page.goto(live.url + "/implantologie")
    # The page the visitor accepted on counts (once: served again, now with consent), and the next one.
    assert [view["path"] for view in page_views(live.runtime)] == [COURSE, "/implantologie"]


def test_reject_all_without_javascript(live: LiveSite, no_js: BrowserContext) -> None:
    page = no_js.new_page()
    page.goto(live.url + "/")
    with page.expect_navigation():
        page.get_by_role("button", name="Alles weigeren").click()
    expect(banner(page)).to_have_count(0)
    page.goto(live.url + "/implantologie")
    expect(banner(page)).to_have_count(0)  # remembered
    [proof] = ledger(live.runtime)
    assert proof["method"] == "form" and proof["categories"] == ["necessary"]
    assert page_views(live.runtime) == []


def test_choose_without_javascript_on_the_settings_page(
    live: LiveSite, no_js: BrowserContext, artifacts: Path
) -> None:
    page = no_js.new_page()
    page.goto(live.url + COURSE)
    with page.expect_navigation():
        page.get_by_role("button", name="Per doel kiezen").click()
    assert "/_koekje/settings?" in page.url
    expect(page.get_by_role("heading", level=1, name="Uw keuze over cookies")).to_be_visible()
    statistics = page.get_by_role("checkbox", name="Statistieken")
    expect(statistics).not_to_be_checked()  # nothing optional ticked before a choice
    expect(page.get_by_role("checkbox", name="Strikt noodzakelijk (Altijd aan)")).to_be_disabled()
    statistics.check()
    page.screenshot(path=artifacts / "settings-page-nl.png", full_page=True)
    with page.expect_navigation():
        statistics.press("Enter")  # Enter keeps what was ticked (found by trying: it used to refuse all)
    assert page.url == live.url + COURSE
    expect(banner(page)).to_have_count(0)
    [proof] = ledger(live.runtime)
    assert proof["method"] == "form" and proof["categories"] == ["analytics", "necessary"]

    # Withdrawing, also without JavaScript: the settings page shows the choice as it stands.
    page.goto(live.url + "/_koekje/settings?lang=nl&return=/implantologie")
    expect(page.get_by_role("checkbox", name="Statistieken")).to_be_checked()
    with page.expect_navigation():
        page.get_by_role("button", name="Alles weigeren").click()
    assert page.url == live.url + "/implantologie"
    assert [row["categories"] for row in ledger(live.runtime)] == [["analytics", "necessary"], ["necessary"]]
    # The page chosen on, served again with statistics allowed, counted; the one after the withdrawal not.
    assert [view["path"] for view in page_views(live.runtime)] == [COURSE]


LAYOUT = """() => {
  window.shifts = [];
  new PerformanceObserver(list => list.getEntries().forEach(e => shifts.push(e.value)))
    .observe({type: "layout-shift", buffered: true});
  window.bannersAdded = 0;
  new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(n => {
    if (n.nodeType === 1 && n.id === "koekje") bannersAdded++;
  }))).observe(document, {childList: true, subtree: true});
}"""


def test_no_layout_shift_and_no_flash(live: LiveSite, context: BrowserContext) -> None:
    context.add_init_script(script=f"({LAYOUT})();")
    page = context.new_page()
    with page.expect_response("**/_koekje/config.json*") as loaded:
        response = page.goto(live.url + "/")
    assert response is not None and 'id="koekje"' in response.text()  # in the page from its first paint
    assert loaded.value.ok
    expect(banner(page)).to_be_visible()
    page.get_by_role("button", name="Per doel kiezen").click()  # unfolds in place
    expect(page.get_by_role("checkbox", name="Statistieken")).to_be_visible()
    page.get_by_role("button", name="Alles accepteren").click()
    expect(banner(page)).to_have_count(0)
    page.evaluate("() => new Promise(requestAnimationFrame)")
    assert page.evaluate("shifts") == []

    # A visitor who decided: no banner in the page, and none added while it loads.
    with page.expect_response("**/_koekje/config.json*"):
        response = page.goto(live.url + "/implantologie")
    assert response is not None and 'id="koekje"' not in response.text()
    page.evaluate("() => new Promise(requestAnimationFrame)")
    assert page.evaluate("bannersAdded") == 0
    assert page.evaluate("shifts") == []
