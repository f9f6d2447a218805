"""Which consent rules apply where: a table from region (ISO 3166 country or country-subdivision code) to
``opt-in`` or ``opt-out``.

Unknown means opt-in, always: no GeoIP database, an address the database does not know, or a region the
table does not list while its default is opt-out does not count as known. A region code is a country
(``NL``) or, with a GeoIP database that has subdivisions (a City database), ``US-CA``; a subdivision not in
the table falls back to its country.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

Mode = Literal["opt-in", "opt-out"]
OPT_IN: Mode = "opt-in"
OPT_OUT: Mode = "opt-out"
REGION_CODE = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?")

# GDPR + ePrivacy: the EU's 27, the EEA's Iceland, Liechtenstein and Norway; the UK (UK GDPR + PECR) and
# Switzerland (revised FADP) ask the same for cookies.
EU_EEA_UK_CH: tuple[str, ...] = (
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT",
    "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO", "GB", "CH",
)  # fmt: skip

# US states whose comprehensive privacy law is in force (2026-11) and lets businesses process for analytics
# and advertising until the consumer opts out. The statutes and dates are listed, with their sources, in
# docs/consent.md; laws enacted in 2026 that take effect in 2027 (Oklahoma, Alabama, Louisiana) are not in
# force yet. Florida's law covers only very large companies and is left out.
US_OPT_OUT_STATES: tuple[str, ...] = (
    "US-CA", "US-VA", "US-CO", "US-CT", "US-UT", "US-TX", "US-OR", "US-MT", "US-IA", "US-DE", "US-NE",
    "US-NH", "US-NJ", "US-TN", "US-MN", "US-MD", "US-IN", "US-KY", "US-RI",
)  # fmt: skip


class RegionRules:
    """``mode(region)`` for a region code from the GeoIP lookup (None: unknown)."""

    def __init__(self, default: Mode, opt_in: Iterable[str], opt_out: Iterable[str]) -> None:
        self._default = default
        self._modes: dict[str, Mode] = {code: OPT_IN for code in opt_in}
        self._modes.update({code: OPT_OUT for code in opt_out})

    def mode(self, region: str | None) -> Mode:
        if region is None:
            return OPT_IN
        mode = self._modes.get(region)
        if mode is None and "-" in region:
            mode = self._modes.get(region.partition("-")[0])
        return mode or self._default


def check_region_codes(key: str, codes: Iterable[str]) -> None:
    for code in codes:
        if not REGION_CODE.fullmatch(code):
            raise ValueError(f"{key}: {code!r} is not an ISO 3166 code such as 'NL' or 'US-CA'")
