"""What the banner shows a visitor in one language, and its hash.

The same content feeds ``config.json`` and the consent proof: every ledger row of a decision made in the
banner refers to the hash of exactly this content, and the content itself is stored once per hash, so
``koekje consent show`` can print what the visitor read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from koekje.banner import merged

from .declarations import DURATION, NECESSARY, CookieRule, Declarations, Service

# Shown elsewhere in the content (the durations: in each cookie's lifetime, in the visitor's language).
_NOT_TEXTS = frozenset({"categories", "consent_cookie", "visit_cookie", "durations"})


def _in_banner(key: str) -> bool:
    """Whether a text is the banner's (the your-data page's own texts are not part of what a visitor
    consents to, and banner.js does not need them)."""
    own_page = (
        key.startswith(("rights_", "declaration_", "undeclared_", "party_")) or key == "column_last_seen"
    )
    return key not in _NOT_TEXTS and (not own_page or key == "rights_link")


class BannerContent:
    def __init__(
        self,
        declarations: Declarations,
        *,
        languages: tuple[str, ...],
        categories: tuple[str, ...],
        policy_revision: int,
        privacy_url: str | None,
        consent_cookie: str,
        consent_days: int,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._declarations = declarations
        self._languages = languages
        self._categories = (NECESSARY, *categories)
        self._revision = policy_revision
        self._privacy_url = privacy_url
        self._consent_cookie = consent_cookie
        self._consent_days = consent_days
        self._overrides = overrides or {}
        self.body = cache(self._body)
        self.canonical = cache(self._canonical)
        self.hash = cache(self._hash)

    def _body(self, lang: str) -> dict[str, Any]:
        words = merged(lang, self._overrides.get(lang))
        return {
            "lang": lang,
            "policy_revision": self._revision,
            "texts": {key: value for key, value in words.items() if _in_banner(key)},
            "privacy_url": self._privacy_url,
            "categories": [
                {
                    "id": category,
                    "required": category == NECESSARY,
                    **words["categories"][category],
                    "services": [self._service(s, lang) for s in self._declarations.services_of(category)],
                    "cookies": self._own(words) * (category == NECESSARY)
                    + [self._cookie(c, lang) for c in self._declarations.cookies_of(category)],
                }
                for category in self._categories
            ],
        }

    def _own(self, words: Mapping[str, Any]) -> list[dict[str, Any]]:
        """koekje's own cookie, declared by koekje (``__Host-`` prefixed on https)."""
        return [
            {
                "name": self._consent_cookie,
                "service": None,
                "provider": "",
                "purpose": words["consent_cookie"],
                "duration": localized(f"{self._consent_days} days", words["durations"]),
                "party": "first",
            }
        ]

    def _canonical(self, lang: str) -> str:
        return json.dumps(self.body(lang), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def _hash(self, lang: str) -> str:
        return hashlib.sha256(self.canonical(lang).encode()).hexdigest()

    def _service(self, service: Service, lang: str) -> dict[str, Any]:
        return {
            "id": service.id,
            "title": self._in(service.title, lang) or service.id,
            "provider": service.provider,
            "purpose": self._in(service.purpose, lang),
            "privacy_url": service.privacy_url,
        }

    def _cookie(self, rule: CookieRule, lang: str) -> dict[str, Any]:
        return {
            "name": rule.name,
            "service": rule.service,
            "provider": rule.provider,
            "purpose": self._in(rule.purpose, lang),
            "duration": localized(rule.duration, merged(lang, self._overrides.get(lang))["durations"]),
            "party": rule.party,
        }

    def page_texts(self, lang: str) -> dict[str, Any]:
        """Every text in ``lang``, the site's wording put in: for koekje's own pages."""
        return merged(lang, self._overrides.get(lang))

    def _in(self, per_language: Mapping[str, str], lang: str) -> str:
        """The text in ``lang``, else in the site's first language that has one (``koekje check`` lists the
        missing translations)."""
        for candidate in (lang, *self._languages, *per_language):
            if candidate in per_language:
                return per_language[candidate]
        return ""


def localized(duration: str, units: Mapping[str, Any]) -> str:
    """A declared lifetime ("session", "13 months": the grammar ``parse_duration`` accepts) in the words of
    a language; anything else as written."""
    cleaned = duration.strip().lower()
    if cleaned == "session":
        return str(units["session"])
    match = DURATION.fullmatch(cleaned)
    if match is None:
        return duration
    count = int(match[1])
    singular, plural = units[match[2]]
    return f"{count} {singular if count == 1 else plural}"
