"""koekje's cookie banner: the vanilla-JS banner and its stylesheet, and the texts it shows per language."""

from .assets import ASSET_NAMES, Asset, asset
from .markup import (
    FirstLayers,
    render_banner,
    render_declaration,
    render_notice,
    render_rights_page,
    render_settings_page,
)
from .texts import available_languages, check_overrides, merged, negotiate, texts

__all__ = [
    "ASSET_NAMES",
    "Asset",
    "FirstLayers",
    "asset",
    "available_languages",
    "check_overrides",
    "merged",
    "negotiate",
    "render_banner",
    "render_declaration",
    "render_notice",
    "render_rights_page",
    "render_settings_page",
    "texts",
]
