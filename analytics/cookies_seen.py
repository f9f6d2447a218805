"""Cookies the site sets without declaring them: a tally per name, so the cookie declaration can be kept
true to what the site really sets (first and last seen, how often, one sample path without its query)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .store import Store


@dataclass(frozen=True, slots=True)
class CookieSighting:
    """One response that set an undeclared cookie."""

    ts: datetime
    site: str
    name: str
    path: str  # the page's path, already without its query


@dataclass(frozen=True, slots=True)
class SeenCookie:
    name: str
    first_seen: datetime
    last_seen: datetime
    count: int
    sample_path: str


@dataclass(slots=True)
class _Tally:
    first: datetime
    last: datetime
    count: int
    path: str


class CookieSightingSink:
    """Writes a batch of sightings as one row per cookie name (the batch is tallied first)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def write(self, batch: Sequence[CookieSighting]) -> None:
        tally: dict[tuple[str, str], _Tally] = {}
        for s in batch:
            entry = tally.get((s.site, s.name))
            if entry is None:
                tally[(s.site, s.name)] = _Tally(s.ts, s.ts, 1, s.path)
            else:
                entry.last = max(entry.last, s.ts)
                entry.count += 1
        keys, values = list(tally), list(tally.values())
        self._store.insert_columns(
            "cookies_seen",
            {
                "site": [site for site, _ in keys],
                "name": [name for _, name in keys],
                "first_seen": [v.first for v in values],
                "last_seen": [v.last for v in values],
                "count": [v.count for v in values],
                "sample_path": [v.path for v in values],
            },
        )


def undeclared_cookies(store: Store, site: str) -> list[SeenCookie]:
    rows = store.query(
        f"""
        SELECT name, min(first_seen), max(last_seen), sum(count), argMax(sample_path, last_seen)
        FROM {store.table("cookies_seen")}
        WHERE site = {{site:String}}
        GROUP BY name
        ORDER BY name
        """,
        {"site": site},
    )
    return [SeenCookie(name, first, last, int(count), path) for name, first, last, count, path in rows]
