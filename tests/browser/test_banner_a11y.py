"""The banner passes axe-core (the locked copy in banner/node_modules) in both layers, on desktop and on a
phone, in Dutch and in English; and so does the cookie-settings page of visitors without JavaScript."""

from pathlib import Path

import pytest
from browsing import AXE, DESKTOP_CHROME, VIEWPORTS, LiveSite, banner, violations
from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.browser

PAGES = {
    "nl": ("/", "Per doel kiezen", "Alles accepteren"),
    "en": ("/en/", "Choose per purpose", "Accept all"),
}


@pytest.mark.parametrize("lang", sorted(PAGES))
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_the_banner_has_no_axe_violations(
    live: LiveSite, browser: Browser, lang: str, device: str, artifacts: Path
) -> None:
    assert AXE.exists(), "run `make test` (it installs banner/node_modules with `npm ci`)"
    context = browser.new_context(viewport=VIEWPORTS[device], user_agent=DESKTOP_CHROME)  # type: ignore[arg-type]
    page = context.new_page()
    path, choose, _ = PAGES[lang]
    with page.expect_response("**/_koekje/config.json*"):
        page.goto(live.url + path)
    expect(banner(page)).to_be_visible()
    assert violations(page, {"include": [["#koekje"]]}) == []  # the first layer
    page.screenshot(path=artifacts / f"banner-first-{device}-{lang}.png", animations="disabled")

    page.get_by_role("button", name=choose).click()
    for details in page.locator("#koekje details").all():
        details.evaluate("element => { element.open = true; }")  # the cookie tables too
    assert violations(page, {"include": [["#koekje"]]}) == []  # the second layer
    page.screenshot(path=artifacts / f"banner-{device}-{lang}.png", animations="disabled")
    context.close()


@pytest.mark.parametrize("lang", sorted(PAGES))
def test_koekjes_own_pages_have_no_axe_violations(
    live: LiveSite, browser: Browser, lang: str, artifacts: Path
) -> None:
    """The settings page, the visitor's page about their data, and the cookie declaration."""
    context = browser.new_context(viewport=VIEWPORTS["mobile"], user_agent=DESKTOP_CHROME, bypass_csp=True)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(f"{live.url}/_koekje/settings?lang={lang}&return=/")
    assert violations(page, None) == []  # the whole page is koekje's
    page.get_by_role("button", name=PAGES[lang][2]).click()  # accept all: the page about their data is full
    for name in ("your-data", "cookies"):
        page.goto(f"{live.url}/_koekje/{name}?lang={lang}")
        assert violations(page, None) == [], name
        page.screenshot(path=artifacts / f"{name}-{lang}.png", full_page=True)
    context.close()
