"""The banner's ``<link>`` and ``<script>`` tags for a page, with content-hashed URLs (and the page's CSP
nonce when it has one)."""

from __future__ import annotations

import html

from koekje.banner import asset


class BannerTags:
    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._cache: dict[str, bytes] = {}

    def render(self, root_path: str, nonce: str | None = None) -> bytes:
        if nonce is None:
            tag = self._cache.get(root_path)
            if tag is not None:
                return tag
        prefix = html.escape(f"{root_path}{self._prefix}")
        css, js = asset("banner.css"), asset("banner.js")
        attribute = f' nonce="{html.escape(nonce)}"' if nonce else ""
        tag = (
            f'<link rel="stylesheet" href="{prefix}/banner.css?v={css.version}">'
            f'<script{attribute} src="{prefix}/banner.js?v={js.version}" defer></script>'
        ).encode()
        if nonce is None and len(self._cache) < 64:  # root paths come from the server's mounts: a handful
            self._cache[root_path] = tag
        return tag
