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
class Tally:
    """One row of ``cookies_seen``: a batch's sightings of one cookie name."""

    site: str
    name: str
    first_seen: datetime
    last_seen: datetime
    count: int
    sample_path: str


def tally(batch: Sequence[CookieSighting]) -> list[Tally]:
    """A batch of sightings as one row per site and cookie name."""
    rows: dict[tuple[str, str], Tally] = {}
    for s in batch:
        row = rows.get((s.site, s.name))
        if row is None:
            rows[(s.site, s.name)] = Tally(s.site, s.name, s.ts, s.ts, 1, s.path)
        else:
            row.last_seen = max(row.last_seen, s.ts)
            row.count += 1
    return list(rows.values())


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
