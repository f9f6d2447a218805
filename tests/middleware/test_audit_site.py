"""The audit's bounds: which pages are the site's to crawl, which hosts are its own, what a sitemap lists;
and the browser's switches and options that refuse what they cannot use."""

from __future__ import annotations

import pytest

from koekje.middleware.audit import AuditOptions, AuditUnavailable
from koekje.middleware.audit.browser import chromium, resolver_rules, user_agent
from koekje.middleware.audit.site import Site, sitemap_locations, without_query


def test_hosts_of_the_site_and_hosts_of_others() -> None:
    site = Site("https://www.example.nl/", allow_hosts=["cdn.partner.example"])
    for own in (
        "www.example.nl",
        "example.nl",
        "static.example.nl",
        "WWW.EXAMPLE.NL.",
        "cdn.partner.example",
        "eu.cdn.partner.example",
    ):
        assert site.owns(own), own
    for other in (
        "example.com",
        "notexample.nl",
        "example.nl.evil.test",
        "partner.example",
        "thirdparty.test",
    ):
        assert not site.owns(other), other
    # Without "www." the host is the site; its siblings are not.
    shop = Site("http://shop.example.nl:8080/")
    assert shop.owns("img.shop.example.nl") and not shop.owns("www.example.nl")


def test_pages_of_the_site() -> None:
    site = Site("https://www.example.nl/start#top", prefix="/_koekje")
    assert site.start == "https://www.example.nl/start"
    assert site.page("https://www.example.nl/a?x=1#part") == "https://www.example.nl/a?x=1"
    assert site.page("https://WWW.Example.nl/b") == "https://www.example.nl/b"
    for not_a_page in (
        "http://www.example.nl/a",  # another origin (scheme)
        "https://www.example.nl:8443/a",
        "https://example.com/",
        "https://www.example.nl/_koekje/settings",  # koekje's own pages
        "https://www.example.nl/_koekje",
        "https://www.example.nl/brochure.PDF",
        "https://www.example.nl/logo.svg",
        "mailto:info@example.nl",
    ):
        assert site.page(not_a_page) is None, not_a_page
    assert site.page("https://www.example.nl/_koekjes-recept") is not None  # only the prefix itself


def test_the_start_page_first_then_each_page_once_up_to_the_limit() -> None:
    site = Site("https://www.example.nl/")
    links = [
        "https://www.example.nl/#main",
        "https://www.example.nl/a",
        "https://example.com/",
        "https://www.example.nl/a#x",
        "https://www.example.nl/b",
        "https://www.example.nl/c",
    ]
    assert site.pages(links, 3) == [
        "https://www.example.nl/",
        "https://www.example.nl/a",
        "https://www.example.nl/b",
    ]
    assert site.pages(links, 1) == ["https://www.example.nl/"]


def test_sitemaps_and_sitemap_indexes() -> None:
    urlset = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://www.example.nl/a?x=1&amp;y=2</loc><lastmod>2026-01-01</lastmod></url>
  <url><LOC>
    https://www.example.nl/b
  </LOC></url>
</urlset>"""
    assert sitemap_locations(urlset) == (
        ["https://www.example.nl/a?x=1&y=2", "https://www.example.nl/b"],
        False,
    )
    index = "<sitemapindex><sitemap><loc>https://www.example.nl/pages.xml</loc></sitemap></sitemapindex>"
    assert sitemap_locations(index) == (["https://www.example.nl/pages.xml"], True)
    assert sitemap_locations("<html>not found</html>") == ([], False)


def test_addresses_in_reports_lose_their_queries() -> None:
    assert without_query("https://t.example/p.gif?uid=123&page=/x#f") == "https://t.example/p.gif"


def test_what_cannot_be_audited_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Site("ftp://www.example.nl/")
    with pytest.raises(ValueError, match="HOST=ADDRESS"):
        resolver_rules({"www.example.nl": "10.0.0.5, MAP * 1.2.3.4"})
    with pytest.raises(AuditUnavailable, match="no such file"):
        chromium("/nonexistent/chromium")
    with pytest.raises(ValueError, match="--pages"):
        AuditOptions(pages=0)
    with pytest.raises(ValueError, match="--dwell"):
        AuditOptions(dwell_seconds=-1)


def test_the_browsers_switches() -> None:
    assert resolver_rules({}) == []
    assert resolver_rules({"thirdparty.test": "127.0.0.1", "www.example.nl": "::1"}) == [
        "--host-resolver-rules=MAP thirdparty.test 127.0.0.1, MAP www.example.nl ::1"
    ]
    # What a visitor's Chrome says: "HeadlessChrome" is what crawlers say, and sites treat it so.
    assert user_agent("156.0.7485.3").endswith("Chrome/156.0.0.0 Safari/537.36")
    assert "Headless" not in user_agent("156.0.7485.3")
