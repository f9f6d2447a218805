"""What the browser tests share: Chromium as these machines run it, and the demo site on uvicorn. A pytest
plugin of the suite (tests/conftest.py), so its fixtures serve every browser test module."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from support import demo_config

from koekje.demo.site import create_site
from koekje.middleware import Config, KoekjeMiddleware

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Headless Chromium says "HeadlessChrome", which crawlers use: a visitor's browser says what it is.
DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
)


AXE = Path(__file__).parent.parent / "banner" / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "mobile": {"width": 375, "height": 667}}


def violations(page: Page, context: Any) -> list[str]:
    """What axe-core (the locked copy in banner/node_modules) finds wrong in ``context`` (None: the page)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(path=AXE)
    found = page.evaluate(
        "context => axe.run(context || document).then(result => result.violations)", context
    )
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}" for v in found]


class LiveSite:
    def __init__(self, app: KoekjeMiddleware, url: str) -> None:
        self.app = app
        self.url = url
        self.runtime: Any = app.runtime


@contextmanager
def serve(config: Config, site: Any = None, clock: Any = None) -> Iterator[LiveSite]:
    """The demo site (or ``site``) behind KoekjeMiddleware on uvicorn in a thread. The socket listens before
    the server runs, so the browser's first request simply waits in the backlog until startup is done."""
    app = KoekjeMiddleware(site or create_site(), config, **({"clock": clock} if clock else {}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield LiveSite(app, f"http://127.0.0.1:{sock.getsockname()[1]}")
    server.should_exit = True
    thread.join(30)
    sock.close()
    with app.runtime.store as store:
        store.command(f"DROP DATABASE IF EXISTS `{store.settings.database}` SYNC")


def banner(page: Page) -> Any:
    return page.get_by_role("dialog")


def cookie_names(context: BrowserContext) -> set[str]:
    return {cookie["name"] for cookie in context.cookies()}


# Module-scoped: sync Playwright runs an event loop of its own while it is open, which the suite's
# asyncio and trio tests must not meet.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # The browser's own user agent too: a beacon sent as a page unloads goes out with it, not the context's
    # (its engagement was dropped as a crawler's, once koekje checked engagement's user agent).
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--user-agent={DESKTOP_CHROME}"]
    )
    yield browser
    browser.close()


@pytest.fixture
def live(make_config: Callable[..., Config]) -> Iterator[LiveSite]:
    with serve(demo_config(make_config())) as site:
        yield site


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1200, "height": 800}, user_agent=DESKTOP_CHROME)
    yield context
    context.close()
