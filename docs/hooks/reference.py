"""MkDocs hook: the configuration reference page is generated from koekje's schema at build time, so the site
shows what the installed code reads (docs/configuration.md is the same text, committed for readers of the
repository; a test keeps it current)."""

from typing import Any

from koekje.middleware.reference import render


def on_page_read_source(page: Any, config: Any) -> str | None:
    return render() if page.file.src_uri == "configuration.md" else None
