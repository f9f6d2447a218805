"""``koekje audit``: evidence from a real browser that the site sets nothing before consent, and that its
cookie declaration (koekje.toml) is true.

Chromium visits the site's pages as a visitor who made no choice, one who rejected everything and one who
accepted everything (optionally one per category), making each choice in the real banner. What they were
given (cookies, web storage, requests to other hosts) is held against the declarations; the findings and
the evidence make a report a privacy officer can file, and an exit code CI can gate on.

Playwright is an optional extra (``koekje[audit]``): this package imports it only when an audit runs.
"""

from .browser import AuditUnavailable
from .evidence import BannerCheck, Cookie, Finding, PageLoad, Report, Request, StorageItem, Visitor
from .run import AuditOptions, audit, declarations_of

__all__ = [
    "AuditOptions",
    "AuditUnavailable",
    "BannerCheck",
    "Cookie",
    "Finding",
    "PageLoad",
    "Report",
    "Request",
    "StorageItem",
    "Visitor",
    "audit",
    "declarations_of",
]
