"""The built banner assets, served with a content hash so they can be cached for a long time."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

_MEDIA_TYPES = {"banner.js": "text/javascript; charset=utf-8", "banner.css": "text/css; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    media_type: str
    version: str  # a short content hash, for ``?v=`` cache busting and the ETag


@cache
def asset(name: str) -> Asset:
    if name not in _MEDIA_TYPES:
        raise KeyError(name)
    body = files("koekje.banner").joinpath("static", name).read_bytes()
    return Asset(name, body, _MEDIA_TYPES[name], hashlib.sha256(body).hexdigest()[:16])


ASSET_NAMES = tuple(_MEDIA_TYPES)
