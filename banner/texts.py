"""The banner's texts per language, and choosing a language for a visitor."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

MAX_ACCEPT_LANGUAGE = 512


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
