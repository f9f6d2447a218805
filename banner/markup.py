"""The banner's markup, rendered on the server: into a page for a visitor who has not chosen yet, as the
cookie-settings page, and as the fragment banner.js fetches when a visitor reopens their choice.

One form holds both layers, so a visitor without JavaScript chooses with plain form posts; banner.js
enhances this same markup instead of building its own. Jinja2 escapes every text (the site's own wording
and declarations come from ``koekje.toml``, the return path from the request).
"""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from .assets import asset

_ENV = Environment(
    loader=PackageLoader("koekje.banner", "templates"),
    autoescape=select_autoescape(default=True),
    keep_trailing_newline=False,
)
# Stands for the return path in a cached first layer (survives escaping; never in a real path: refused).
_RETURN = "\x00koekje-return\x00"


def render_banner(
    content: Mapping[str, Any],
    *,
    action: str,
    return_to: str,
    page: bool = False,
    granted: Collection[str] = (),
    services: Collection[str] = (),
    message: str | None = None,
    error: str | None = None,
    reference: str | None = None,
    reference_label: str = "",
) -> str:
    """The banner for ``content`` (``BannerContent.body``): the first layer (``page`` False: the choices
    folded away, nothing ticked but what ``granted``/``services`` say), or the settings page's banner with
    the visitor's reference, to quote in a letter about their data, when they have a decision."""
    return _ENV.get_template("settings.html" if page else "banner.html").render(
        c=content,
        lang=content["lang"],
        action=action,
        prefix=action.removesuffix("/consent"),
        return_to=return_to,
        page=page,
        granted=frozenset(granted),
        services=frozenset(services),
        message=message,
        error=error,
        reference=reference,
        reference_label=reference_label,
        css_version=_css_version(),
    )


def render_settings_page(content: Mapping[str, Any], **banner: Any) -> str:
    """The cookie-settings page: a whole document around the banner with its second layer open."""
    return render_banner(content, page=True, **banner)


def render_rights_page(texts: Mapping[str, Any], **page: Any) -> str:
    """The visitor's own page about their data: the reference, a copy, erasure, objection."""
    return _ENV.get_template("your-data.html").render(t=texts, css_version=_css_version(), **page)


def render_declaration(content: Mapping[str, Any], texts: Mapping[str, Any], **page: Any) -> str:
    """The cookie declaration: every declared cookie per category and service, and those seen undeclared."""
    return _ENV.get_template("cookies.html").render(
        c=content, t=texts, lang=content["lang"], css_version=_css_version(), **page
    )


def _css_version() -> str:
    """The stylesheet's content hash, for its cache-busting URL (as the page tags use it)."""
    return asset("banner.css").version


# Markdown, not HTML: nothing to escape for a browser (the notice goes into the site's own policy text).
_TEXT = Environment(
    loader=PackageLoader("koekje.banner", "templates"),
    autoescape=False,  # noqa: S701
    keep_trailing_newline=True,
)


def render_notice(lang: str, **notice: Any) -> str:
    """The privacy notice section in ``lang`` (``nl`` or ``en``), as Markdown."""
    return _TEXT.get_template(f"notice.{lang}.md").render(**notice)


class FirstLayers:
    """The first layer as a page gets it, rendered once per language and action and then only given its
    return path: no template runs on the request path."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[bytes, bytes]] = {}

    def render(self, content: Mapping[str, Any], action: str, return_to: str) -> bytes:
        return b"".join(self.parts(content, action, return_to))

    def parts(self, content: Mapping[str, Any], action: str, return_to: str) -> tuple[bytes, bytes, bytes]:
        """The first layer in three parts, to be joined into a page without copying it once more."""
        key = (content["lang"], action)
        parts = self._cache.get(key)
        if parts is None:
            before, _, after = render_banner(content, action=action, return_to=_RETURN).partition(_RETURN)
            parts = (before.encode(), after.encode())
            if len(self._cache) < 256:  # languages x mounts: a handful
                self._cache[key] = parts
        return parts[0], html.escape(return_to).encode(), parts[1]
