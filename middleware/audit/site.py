"""Which pages belong to the audited site and which hosts are its own: the crawl's bounds and the line
between first and third parties."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

# Links to files rather than pages: the banner, cookies and scripts of a PDF are not the site's to audit.
_NOT_PAGES = (
    *(".pdf", ".zip", ".gz", ".xml", ".txt", ".css", ".js", ".json", ".csv", ".ics"),
    *(".jpg", ".jpeg", ".png", ".gif", ".svg", ".webp", ".ico", ".mp3", ".mp4", ".webm"),
    *(".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt"),
)
# Sitemaps are a tiny, fixed XML vocabulary: reading <loc> needs no XML parser (and an XML parser on a
# document from the network would need guarding against entity expansion).
_LOC = re.compile(r"<loc>\s*([^<]+?)\s*</loc>", re.IGNORECASE)


class Site:
    """The audited site, from its start page. Pages are crawled on exactly its origin; requests count as
    the site's own when they go to its host, to the domain under a leading ``www.`` and that domain's
    subdomains (``cdn.example.nl`` for ``www.example.nl``), or to a host the owner allows."""

    def __init__(self, start: str, *, prefix: str = "/_koekje", allow_hosts: Iterable[str] = ()) -> None:
        parts = urlsplit(start)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{start[:80]!r} is not an http(s) address of a site, e.g. https://www.example.nl/"
            )
        self.start = urlunsplit((parts.scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))
        self.origin = (parts.scheme, parts.netloc.lower())
        self.host = parts.hostname.lower()
        self._domain = self.host.removeprefix("www.")
        self._prefix = prefix.rstrip("/") + "/"
        self._allowed = frozenset(host.lower().strip(".") for host in allow_hosts)

    def banner_script(self, url: str) -> bool:
        """Whether ``url`` is koekje's banner.js on this site (it runs the gated scripts)."""
        parts = urlsplit(url)
        return (
            parts.scheme,
            parts.netloc.lower(),
        ) == self.origin and parts.path == self._prefix + "banner.js"

    def owns(self, host: str) -> bool:
        """Whether a request to ``host`` stays with the site."""
        host = host.lower().rstrip(".")
        return (
            host == self.host
            or host == self._domain
            or host.endswith("." + self._domain)
            or host in self._allowed
            or any(host.endswith("." + allowed) for allowed in self._allowed)
        )

    def page(self, url: str) -> str | None:
        """``url`` as a page of this site to crawl (without its fragment), or None when it is not one."""
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != self.origin:
            return None
        path = parts.path or "/"
        if path.startswith(self._prefix) or path.rstrip("/") == self._prefix.rstrip("/"):
            return None  # koekje's own pages (settings, your data, the dashboard)
        if path.lower().endswith(_NOT_PAGES):
            return None
        return urlunsplit((parts.scheme, parts.netloc.lower(), path, parts.query, ""))

    def pages(self, candidates: Iterable[str], limit: int) -> list[str]:
        """The start page, then each candidate that is a page of the site, once, up to ``limit``."""
        chosen = [self.start]
        for url in candidates:
            page = self.page(url)
            if len(chosen) >= limit:
                break
            if page is not None and page not in chosen:
                chosen.append(page)
        return chosen[:limit]


def sitemap_locations(xml: str) -> tuple[list[str], bool]:
    """The addresses in a sitemap, and whether it is a sitemap index (whose addresses are sitemaps)."""
    return [html.unescape(loc) for loc in _LOC.findall(xml)], "<sitemapindex" in xml.lower()


def without_query(url: str) -> str:
    """An address fit for a report: query strings and fragments carry identifiers."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
