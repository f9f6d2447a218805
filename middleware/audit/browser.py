"""The audit's browser: the system's Chromium, driven through Playwright (the optional extra
``koekje[audit]``), launched the same way wherever it runs."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

INSTALL_HINT = (
    "koekje audit needs Playwright, an optional extra of koekje: pip install 'koekje[audit]'. "
    "It drives the Chromium of your system (Debian/Ubuntu: sudo apt-get install chromium), "
    "or Playwright's own after `playwright install chromium`."
)
# Names the system's Chromium goes by, in the order they are tried.
_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
# A browser that talks only to the site: no updates, syncing or other background traffic would show up as
# requests to third parties. The sandbox needs user namespaces that containers and CI runners often lack.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}")
_ADDRESS = re.compile(r"[0-9A-Fa-f.:]{2,45}")


class AuditUnavailable(RuntimeError):
    """The audit cannot run here (no Playwright, no browser, a site that cannot be reached); the message
    says what to do."""


def chromium(given: str | None) -> str | None:
    """The Chromium to launch: the one given, else the system's; None leaves it to Playwright."""
    if given:
        if not Path(given).is_file():
            raise AuditUnavailable(f"--chromium {given!r}: no such file")
        return given
    for name in _CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def resolver_rules(resolve: Mapping[str, str]) -> list[str]:
    """Chromium's switch that sends these host names to these addresses (like curl's ``--resolve``): to
    audit a staging server under the site's real name, or a second local host name in tests."""
    for host, address in resolve.items():
        if not _HOST.fullmatch(host) or not _ADDRESS.fullmatch(address):
            raise ValueError(f"--resolve {host}={address}: give HOST=ADDRESS, e.g. www.example.nl=10.0.0.5")
    if not resolve:
        return []
    rules = ", ".join(f"MAP {host} {address}" for host, address in resolve.items())
    return [f"--host-resolver-rules={rules}"]


def launch(playwright: Playwright, executable: str | None, resolve: Mapping[str, str]) -> Browser:
    from playwright.sync_api import Error

    try:
        return playwright.chromium.launch(
            executable_path=chromium(executable), args=[*CHROMIUM_ARGS, *resolver_rules(resolve)]
        )
    except Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AuditUnavailable(
            f"Chromium did not start ({first}). Install it (Debian/Ubuntu: sudo apt-get install chromium), "
            "or name it with --chromium PATH"
        ) from None


def user_agent(version: str) -> str:
    """What a desktop Chrome of this version says. Headless Chromium says "HeadlessChrome", and sites and
    their trackers treat that as a crawler: the audit must be shown what a visitor is shown."""
    major = version.split(".")[0]
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{major}.0.0.0 Safari/537.36"
    )
