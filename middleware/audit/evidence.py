"""What the audit saw in the browser, as plain values: the evidence every finding and report is made of.

Nothing here knows about Playwright, so the rules and the reports can be built and tested from values alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Severity = Literal["error", "warning"]
# How a request to another host was made, from the browser's resource type.
RequestKind = Literal["script", "pixel", "beacon", "xhr", "iframe", "stylesheet", "font", "media", "other"]
StorageArea = Literal["localStorage", "sessionStorage"]


@dataclass(frozen=True, slots=True)
class Cookie:
    """One cookie in the browser's jar, where it was first seen and who set it."""

    name: str
    domain: str
    path: str
    expires: float | None  # seconds since the epoch; None: a session cookie
    http_only: bool
    secure: bool
    same_site: str  # "Strict", "Lax" or "None", as the browser holds it
    page: str  # the page on which the audit first found it
    seen_at: float  # when (seconds since the epoch): the lifetime is counted from here
    set_by: tuple[str, ...]  # "response <url>" and/or "script <url>"; "script" alone when no URL was caught

    @property
    def lifetime(self) -> float | None:
        """Seconds the cookie still had to live when it was seen; None for a session cookie."""
        return None if self.expires is None else max(0.0, self.expires - self.seen_at)


@dataclass(frozen=True, slots=True)
class StorageItem:
    """A key in localStorage or sessionStorage (the value is not kept: it may be personal)."""

    area: StorageArea
    origin: str
    key: str
    page: str


@dataclass(frozen=True, slots=True)
class Request:
    """A request to a host that is not the site's own."""

    host: str
    kind: RequestKind
    url: str  # without its query string: that is where identifiers travel, and they do not belong in a report
    page: str


@dataclass(frozen=True, slots=True)
class PageLoad:
    url: str
    status: int | None  # None: the browser got no response (a network error)
    error: str = ""


@dataclass(frozen=True, slots=True)
class Visitor:
    """One kind of visitor: the choice they made in the banner, and everything seen while they browsed."""

    name: str  # "no choice", "rejected all", "accepted all", "granted analytics", ...
    choice: Literal["none", "reject", "accept", "category"]
    granted: tuple[str, ...]  # the categories granted (always "necessary")
    pages: tuple[PageLoad, ...] = ()
    cookies: tuple[Cookie, ...] = ()
    storage: tuple[StorageItem, ...] = ()
    requests: tuple[Request, ...] = ()
    problem: str = ""  # why the visitor could not browse as planned (e.g. the choice could not be made)


@dataclass(frozen=True, slots=True)
class Screenshot:
    caption: str
    png: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class BannerCheck:
    """The banner as a first-time visitor sees it, and what could be checked about it."""

    found: bool
    reject_on_first_layer: bool = False
    reject_size: tuple[float, float] | None = None  # width, height in CSS pixels
    accept_size: tuple[float, float] | None = None
    pre_ticked: tuple[str, ...] = ()  # categories or services ticked before the visitor chose
    offered: tuple[str, ...] = ()  # the categories the banner lets a visitor choose
    screenshots: tuple[Screenshot, ...] = ()


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    rule: str  # a stable code, e.g. "cookie-without-consent"
    message: str
    visitor: str = ""  # the visitor's name; empty when it concerns the site as a whole
    page: str = ""
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    """One audit: what was looked at, by whom, with what, and what was found."""

    site: str
    started: datetime
    finished: datetime
    koekje_version: str
    browser: str  # e.g. "Chromium 156.0.7485.0"
    lang: str  # the browser's language (Accept-Language)
    declaration: str  # where the declared cookies came from (the koekje.toml read)
    pages: tuple[str, ...]
    banner: BannerCheck
    visitors: tuple[Visitor, ...]
    findings: tuple[Finding, ...]
    # Each cookie name seen, as koekje.toml declares it ("analytics, service matomo, 13 months"), or "".
    declared: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(f.severity == "error" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.severity == "warning" for f in self.findings)

    @property
    def passed(self) -> bool:
        """No finding of severity error: the exit code of `koekje audit` is 0."""
        return self.errors == 0
