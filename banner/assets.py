"""The built banner assets (``static/``, made from ``src/`` by ``build.mjs``), served with a content hash so
they can be cached for a long time, and precompressed: gzip and brotli variants are built with the assets,
never made on the request path."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

_MEDIA_TYPES = {"banner.js": "text/javascript; charset=utf-8", "banner.css": "text/css; charset=utf-8"}
# Content codings by preference, and the suffix of their file.
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    media_type: str
    version: str  # a short content hash, for ``?v=`` cache busting and the ETag
    encoded: dict[str, bytes]  # content coding -> the body in it

    def variant(self, accept_encoding: str) -> tuple[str | None, bytes]:
        """The smallest form the client accepts: (content coding or None, bytes)."""
        accepted = _accepted(accept_encoding)
        for coding, _ in ENCODINGS:
            if coding in accepted and coding in self.encoded:
                return coding, self.encoded[coding]
        return None, self.body


@cache
def asset(name: str) -> Asset:
    if name not in _MEDIA_TYPES:
        raise KeyError(name)
    static = files("koekje.banner").joinpath("static")
    body = static.joinpath(name).read_bytes()
    encoded = {coding: static.joinpath(name + suffix).read_bytes() for coding, suffix in ENCODINGS}
    return Asset(name, body, _MEDIA_TYPES[name], hashlib.sha256(body).hexdigest()[:16], encoded)


def _accepted(header: str) -> set[str]:
    """The content codings an ``Accept-Encoding`` header accepts (``q=0`` refuses one)."""
    accepted = set()
    for item in header[:512].split(","):
        coding, _, params = item.strip().partition(";")
        quality = params.strip().lower()
        if quality.startswith("q="):
            try:
                if float(quality[2:]) <= 0:
                    continue
            except ValueError:
                continue
        accepted.add(coding.strip().lower())
    return accepted


ASSET_NAMES = tuple(_MEDIA_TYPES)
