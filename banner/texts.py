"""The banner's texts per language, and choosing a language for a visitor."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any

MAX_ACCEPT_LANGUAGE = 512
# Texts with a part koekje fills in: without it, the visitor would not learn what the text is about.
_PLACEHOLDERS = {"placeholder": ("{service}",), "rights_erased": ("{count}",)}


@cache
def available_languages() -> frozenset[str]:
    return frozenset(
        entry.name.removesuffix(".json")
        for entry in files("koekje.banner").joinpath("texts").iterdir()
        if entry.name.endswith(".json")
    )


@cache
def texts(language: str) -> dict[str, Any]:
    """The built-in texts of one language (ValueError when koekje has none for it)."""
    if language not in available_languages():
        raise ValueError(
            f"koekje has no banner texts for language {language!r}; "
            f"available: {', '.join(sorted(available_languages()))}"
        )
    data: dict[str, Any] = json.loads(
        files("koekje.banner").joinpath("texts", f"{language}.json").read_text()
    )
    return data


def merged(language: str, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The texts of one language with the site's own wording (``[banner.texts.<lang>]``) put in."""
    base = texts(language)
    if not overrides:
        return base
    result = {**base, **{key: value for key, value in overrides.items() if key != "categories"}}
    categories = overrides.get("categories") or {}
    result["categories"] = {
        category: {**fields, **categories.get(category, {})}
        for category, fields in base["categories"].items()
    }
    return result


def check_overrides(language: str, overrides: Mapping[str, Any]) -> None:
    """ValueError naming the key, for an override koekje would not show: an unknown text, a category
    without texts, an empty or non-text value."""
    where = f"banner.texts.{language}"
    base = texts(language)
    for key, value in overrides.items():
        if key == "durations":
            raise ValueError(f"{where}.durations: the units of lifetimes are koekje's to translate")
        if key == "categories" and isinstance(value, Mapping):
            for category, fields in value.items():
                known = base["categories"].get(category)
                if known is None or not isinstance(fields, Mapping):
                    raise ValueError(
                        f"{where}.categories.{category}: koekje knows {sorted(base['categories'])}"
                    )
                for name, text in fields.items():
                    _check_text(f"{where}.categories.{category}.{name}", name, known, text)
            continue
        _check_text(f"{where}.{key}", key, base, value)


def _check_text(where: str, key: str, known: Mapping[str, Any], value: object) -> None:
    if key not in known or key == "categories":
        texts_known = sorted(k for k in known if k != "categories")
        raise ValueError(f"{where}: no such text; the texts are {texts_known}")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: give a non-empty text")
    for placeholder in _PLACEHOLDERS.get(key, ()):
        if placeholder not in value:
            raise ValueError(f"{where}: the text must say {placeholder} (where koekje puts its name)")


def negotiate(requested: str | None, accept_language: str | None, offered: tuple[str, ...]) -> str:
    """The language to show: an explicitly requested one (``?lang=``, e.g. the page's ``<html lang>``),
    else the best match in ``Accept-Language``, else the first offered language."""
    for candidate in (requested, *_accepted(accept_language or "")):
        primary = (candidate or "").split("-")[0].strip().lower()
        if primary in offered:
            return primary
    return offered[0]


def _accepted(header: str) -> list[str]:
    """Language tags of an Accept-Language header, best first; malformed parts are skipped."""
    weighted = []
    for position, part in enumerate(header[:MAX_ACCEPT_LANGUAGE].split(",")):
        tag, _, params = part.partition(";")
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        if tag.strip() and 0 < quality <= 1:
            weighted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]
