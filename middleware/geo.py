"""Region lookup in a MaxMind-format database (GeoLite2-Country or -City, DB-IP), held in memory.

A region is an ISO 3166 country code (``NL``), or with a database that knows subdivisions (a City database)
country and subdivision (``US-CA``). No database means every region is unknown, and an unknown region gets
the strictest rules. Lookups run on the full address, in memory, and are cached per truncated prefix (the
cache holds no full address)."""

from __future__ import annotations

import re
from pathlib import Path

import maxminddb

_ISO = re.compile(r"[A-Z]{2}")
_SUBDIVISION = re.compile(r"[A-Z0-9]{1,3}")
_MISSING = object()


class GeoLookup:
    def __init__(self, database: Path | None, cache_size: int = 65_536) -> None:
        self._path = database
        self._reader: maxminddb.Reader | None = None
        self._cache: dict[str, str | None] = {}
        self._cache_size = cache_size
        self.configured = database is not None  # (read on every request: an attribute, not a property)

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

    def region(self, address: str | None, prefix: str | None) -> str | None:
        """The region of a full address, cached under its truncated ``prefix``; None when unknown."""
        if self._reader is None or not address:
            return None
        key = prefix or address
        region = self._cache.get(key, _MISSING)
        if region is _MISSING:
            region = self._lookup(address)
            if prefix is not None:  # never keep a full address, even as a key
                if len(self._cache) >= self._cache_size:
                    self._cache.clear()
                self._cache[prefix] = region
        return region  # type: ignore[return-value]

    def country(self, address: str | None) -> str | None:
        """The ISO 3166 country code of a full address (not cached), or None when unknown."""
        region = self._lookup(address) if self._reader is not None and address else None
        return region.partition("-")[0] if region else None

    def _lookup(self, address: str) -> str | None:
        assert self._reader is not None
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
                return _with_subdivision(code, record.get("subdivisions")) if key == "country" else code
        return None


def _with_subdivision(country: str, subdivisions: object) -> str:
    if isinstance(subdivisions, list) and subdivisions and isinstance(subdivisions[0], dict):
        code = subdivisions[0].get("iso_code")
        if isinstance(code, str) and _SUBDIVISION.fullmatch(code):
            return f"{country}-{code}"
    return country
