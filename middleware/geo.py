"""Country lookup in a MaxMind-format database (GeoLite2-Country, DB-IP), held in memory.

No database means every region is unknown, and an unknown region gets the strictest rules."""

from __future__ import annotations

import re
from pathlib import Path

import maxminddb

_ISO = re.compile(r"[A-Z]{2}")


class GeoLookup:
    def __init__(self, database: Path | None) -> None:
        self._path = database
        self._reader: maxminddb.Reader | None = None

    def open(self) -> None:
        """Load the database into memory (blocking: call from a thread at startup)."""
        if self._path is not None and self._reader is None:
            try:
                self._reader = maxminddb.open_database(str(self._path), maxminddb.MODE_MEMORY)
            except (OSError, maxminddb.InvalidDatabaseError) as exc:
                raise ValueError(
                    f"geo.database {str(self._path)!r} cannot be read as a GeoIP database: {exc}. "
                    "Point it at a GeoLite2-Country or DB-IP country .mmdb file, or remove the setting."
                ) from exc

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def country(self, address: str | None) -> str | None:
        """The ISO 3166 country code of a full address, or None when unknown."""
        if self._reader is None or not address:
            return None
        try:
            record = self._reader.get(address)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        for key in ("country", "registered_country"):
            entry = record.get(key)
            code = entry.get("iso_code") if isinstance(entry, dict) else None
            if isinstance(code, str) and _ISO.fullmatch(code):
                return code
        return None
