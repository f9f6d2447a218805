"""The audit's reports in each format, from a report written by hand: what a privacy officer files must say
when, where, with what, and show what was seen; what the site put in cookies and URLs stays text."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from support import audit_report, html_table

from koekje.middleware.audit import Cookie, StorageItem
from koekje.middleware.audit.report import render, write


def test_text_for_a_terminal() -> None:
    text = render(audit_report(), "text")
    assert text.startswith("koekje audit of https://www.example.nl/\n  2026-11-25 10:00:00 UTC, koekje 0.2.0")
    assert "ERROR  undeclared-cookie  https://www.example.nl/\n    cookie mystery is not declared\n" in text
    assert "      set by script https://cdn.tracker.example/t.js\n" in text
    assert "WARNING  storage-without-consent  [no choice]" in text
    assert text.endswith("FAILED: 1 error(s), 1 warning(s)\n")
    assert render(audit_report(findings=()), "text").endswith("PASSED: no errors\n")


def test_json_for_tools() -> None:
    data = json.loads(render(audit_report(), "json"))
    assert (data["passed"], data["errors"], data["warnings"]) == (False, 1, 1)
    assert data["started"] == "2026-11-25T10:00:00+00:00"
    assert data["banner"]["screenshots"] == [
        "First layer",
        "Second layer",
    ]  # captions; the images are in HTML
    [_, ga] = data["visitors"][2]["cookies"]
    assert (ga["name"], ga["lifetime_seconds"], ga["declared"]) == (
        "_ga",
        395 * 86400,
        "analytics, 13 months",
    )
    assert data["visitors"][0]["requests"][0]["kind"] == "script"


def test_html_a_privacy_officer_can_file() -> None:
    html = render(audit_report(), "html")
    for fact in (
        "https://www.example.nl/",
        "2026-11-25 10:00:00 UTC",
        "koekje 0.2.0",
        "Chromium 156.0.7485.3",
        "/srv/site/koekje.toml",
        "FAILED: 1 error(s), 1 warning(s).",
    ):
        assert fact in html, fact
    assert html.count('<img src="data:image/png;base64,iVBORw0KGgo') == 2  # the banner as shown, inside
    assert "<h2>Visitor: accepted all</h2>" in html
    assert '<span class="undeclared">not declared</span>' in html and "analytics, 13 months" in html


def test_what_the_site_wrote_is_shown_as_text() -> None:
    """Storage keys, cookie values' names and page addresses come from the audited site."""
    report = audit_report()
    hostile = '<img src=x onerror="alert(1)">'
    visitor = dataclasses.replace(
        report.visitors[0],
        storage=(
            StorageItem("localStorage", "https://www.example.nl", hostile, report.site + "?q=" + hostile),
        ),
    )
    html = render(dataclasses.replace(report, visitors=(visitor, *report.visitors[1:])), "html")
    assert hostile not in html and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    markdown = render(dataclasses.replace(report, visitors=(visitor,)), "markdown")
    assert '| localStorage | https://www.example.nl | &lt;img src=x onerror="alert(1)"&gt; |' in markdown


def test_markdown_tables_hold_whatever_is_in_a_cell(tmp_path: Path) -> None:
    report = audit_report()
    odd = dataclasses.replace(report.visitors[0].cookies[0], name="a|b", set_by=("script\nhttps://x/t.js",))
    assert isinstance(odd, Cookie)
    visitor = dataclasses.replace(report.visitors[0], cookies=(odd,))
    markdown = render(dataclasses.replace(report, visitors=(visitor,)), "markdown")
    row = "| a\\|b | **not declared** | www.example.nl/ | 1 day (to 2026-11-26) | SameSite=Lax | script https://x/t.js"
    assert row in markdown

    written = write(report, "markdown", tmp_path / "audit.md")
    assert [p.name for p in written] == ["audit.md", "audit-banner-1.png", "audit-banner-2.png"]
    text = (tmp_path / "audit.md").read_text()
    assert (
        "![First layer](audit-banner-1.png)" in text
        and "| Result | **FAILED**: 1 error(s), 1 warning(s) |" in text
    )
    assert (tmp_path / "audit-banner-2.png").read_bytes().startswith(b"\x89PNG")
    assert "write the report to a file with `--output`" in render(report, "markdown")  # images nowhere else


def test_html_tables_per_visitor() -> None:
    html = render(audit_report(), "html")
    assert html_table(html, "cookies: accepted all") == [
        ["Name", "Declared as", "Domain, path", "Lifetime", "Flags", "Set by", "First seen on"],
        ["mystery", "not declared", "www.example.nl/", "1 day (to 2026-11-26)", "SameSite=Lax",
         "script https://cdn.tracker.example/t.js", "https://www.example.nl/"],
        ["_ga", "analytics, 13 months", ".example.nl/", "395 days (to 2027-12-25)", "Secure, SameSite=Lax",
         "script https://www.example.nl/stats.js", "https://www.example.nl/b"],
    ]  # fmt: skip
    assert html_table(html, "requests: no choice")[1] == [
        "cdn.tracker.example",
        "script",
        "https://cdn.tracker.example/t.js",
        "https://www.example.nl/",
    ]
    assert html_table(html, "cookies: rejected all") == []  # "No cookies." instead
    assert "No cookies." in html
