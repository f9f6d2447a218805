"""Google Consent Mode v2: the ``gtag('consent', 'default', ...)`` that must run before any tag does.

Each of the seven consent types is granted by a category or a service (configurable); all are denied unless
the visitor's consent already grants them, and tags wait ``wait_for_update`` ms for the banner's update.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence

from .consent import Consent
from .declarations import NECESSARY, Declarations

# The keyword in any case, the value as it is.
_NONCE = re.compile(r"'(?i:nonce-)([A-Za-z0-9+/_=-]{1,128})'")


class ConsentModeDefault:
    def __init__(self, types: Mapping[str, str], wait_for_update: int, declarations: Declarations) -> None:
        self._types = dict(types)
        self._wait = wait_for_update
        self._services = declarations.services
        self._cache: dict[tuple[frozenset[str], frozenset[str], str | None], bytes] = {}

    def grantors(self) -> dict[str, list[str]]:
        """Per type, the names (categories, services) any of which grants it: what the banner needs for its
        ``update`` (a service is granted by its category too)."""
        grantors = {}
        for kind, grantor in self._types.items():
            service = self._services.get(grantor)
            grantors[kind] = [grantor, service.category] if service is not None else [grantor]
        return grantors

    def granted(self, consent: Consent | None) -> dict[str, str]:
        return {
            kind: "granted" if self._grants(grantor, consent) else "denied"
            for kind, grantor in self._types.items()
        }

    def script(self, consent: Consent | None, nonce: str | None) -> bytes:
        key = (
            consent.categories if consent else frozenset(),
            consent.services if consent else frozenset(),
            nonce,
        )
        tag = self._cache.get(key)
        if tag is None:
            state = {**self.granted(consent), "wait_for_update": self._wait}
            attribute = f' nonce="{html.escape(nonce)}"' if nonce else ""
            tag = (
                f"<script{attribute}>window.dataLayer=window.dataLayer||[];"
                "function gtag(){dataLayer.push(arguments);}"
                f"gtag('consent','default',{json.dumps(state, separators=(',', ':'))});</script>"
            ).encode()
            if len(self._cache) < 256 and nonce is None:  # nonces change per response: never cached
                self._cache[key] = tag
        return tag

    def _grants(self, grantor: str, consent: Consent | None) -> bool:
        if grantor == NECESSARY:
            return True
        if consent is None:
            return False
        service = self._services.get(grantor)
        if service is not None:
            return consent.allows_service(grantor, service.category)
        return consent.allows(grantor)


def script_nonce(headers: Sequence[bytes]) -> str | None:
    """The nonce the page's Content-Security-Policy headers allow scripts with (script-src-elem, else
    script-src, else default-src), if any. A response may send several policies, in several headers or
    comma-joined in one, and the browser enforces each: found by trying, a nonce in any but the last one
    was missed and koekje's scripts were blocked."""
    for header in headers:
        for policy in header.decode("latin-1").split(","):
            directives: dict[str, str] = {}
            for directive in policy.split(";"):
                parts = directive.split(None, 1)  # (any whitespace after the name: a tab too)
                if parts:
                    directives.setdefault(parts[0].lower(), parts[1] if len(parts) > 1 else "")
            for name in ("script-src-elem", "script-src", "default-src"):
                if name in directives:
                    match = _NONCE.search(directives[name])
                    if match:
                        return match[1]
                    break  # this policy governs scripts without a nonce: another may have one
    return None
