"""The banner's markup in a page: a visitor who has not chosen yet gets the first layer in the page itself
(it works without JavaScript and appears with the page, with no flash and no layout shift); one who has
gets at most the floating "cookie settings" link (``banner.floating_button``)."""

from __future__ import annotations

import html
from urllib.parse import quote

from starlette.types import Scope

from koekje.banner import FirstLayers, negotiate

from .consent import Consent
from .shown import BannerContent

MAX_RETURN_PATH = 2048
# Languages chosen, by page language and Accept-Language header: browsers send a few dozen different
# headers, and choosing costs more than looking the answer up. Bounded: the header is the visitor's to say.
_MAX_CHOSEN = 1024


class PageBanner:
    def __init__(
        self, content: BannerContent, languages: tuple[str, ...], prefix: str, floating_button: bool
    ) -> None:
        self._content = content
        self._languages = languages
        self._prefix = prefix
        self._floating = floating_button
        self._layers = FirstLayers()
        self._chosen: dict[tuple[str | None, str | None], str] = {}

    def wanted(self, consent: Consent | None) -> bool:
        """Whether a page for a visitor with ``consent`` gets markup at all."""
        return consent is None or not consent.decided or self._floating

    def render(
        self,
        consent: Consent | None,
        page_lang: str | None,
        accept: str | None,
        root_path: str,
        return_to: str,
    ) -> tuple[bytes, ...]:
        """The markup for this visitor's page, in parts (the page joins them in)."""
        lang = self._chosen.get((page_lang, accept))
        if lang is None:
            lang = negotiate(page_lang, accept, self._languages)
            if len(self._chosen) >= _MAX_CHOSEN:
                self._chosen.clear()
            self._chosen[page_lang, accept] = lang
        prefix = f"{root_path}{self._prefix}"
        if consent is not None and consent.decided:
            settings = html.escape(f"{prefix}/settings?lang={lang}&return=") + _quoted(return_to)
            label = html.escape(self._content.body(lang)["texts"]["settings"])
            return (
                (
                    f'<a class="koekje-floating" href="{settings}" lang="{lang}" data-koekje-open>{label}</a>'
                ).encode(),
            )
        return self._layers.parts(self._content.body(lang), f"{prefix}/consent", return_to)


def page_address(scope: Scope) -> str:
    """The page's path and query as the browser sent them (percent-encoded, so plain ASCII), to come back
    to after a choice: without the query when the whole is longer than a return path may be (a link with
    many campaign parameters), the site's root when even the path is."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope["path"], safe="/%:@!$&'()*+,;=~-._")
    query = scope.get("query_string", b"")
    if len(path) > MAX_RETURN_PATH:
        return "/"
    if query and len(path) + 1 + len(query) <= MAX_RETURN_PATH:
        return f"{path}?{query.decode('latin-1')}"
    return path


def _quoted(path: str) -> str:
    return html.escape(quote(path, safe="/"))


def safe_return(value: str | None) -> str:
    """A path on this site to send the visitor back to: a form field is hostile, so anything that is not
    a plain absolute path ("//host", "/\\host", a scheme, control characters, too long) becomes "/"."""
    if (
        not value
        or len(value) > MAX_RETURN_PATH
        or value[0] != "/"
        or value[1:2] in ("/", "\\")
        or any(ord(ch) < 0x21 or ch == "\\" or ord(ch) == 0x7F for ch in value)
    ):
        return "/"
    return value
