"""Publishing the cells of finished days, so that a dashboard view sums a few thousand stored cells instead of
working the cell rule out over millions of rows (see ``koekje.analytics.cells``).

The loader's thread calls ``Publisher.step`` after each pass, with a time budget, so loading never waits
long: a day's grids (every kind of table, under every filter combination a view allows) are published one
query at a time, newest day first. A day counts as published only once all its grids are in, under one
version (``publications``); a view reads the newest complete version of each day and works out the rest
itself. A day is published again when what it is made of changes (page views loaded late, an erasure, the
statistics' page views): each day's raw row count and statistics page views are its fingerprint, checked
every ``check_every`` seconds. A change of ``min_visitors``, of the time zone or of how a grid is worked
out (an upgrade) is a new ``code``, and every day is published again.

Superseded versions are removed a while after their successor (a view may still be reading them), and
cells of a publication that never finished (a crash) an hour after they were written.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from . import reports
from .aggregates import ALL_TOPICS
from .cells import MAX_SEGMENTS, METRICS, Grid, Selection
from .clock import Clock
from .store import Store

log = logging.getLogger("koekje.analytics")

# Published days are read for this long after a newer version of them is in: views that began before.
KEEP_SUPERSEDED = timedelta(minutes=10)
UNFINISHED_AFTER = timedelta(hours=1)
# Days published together (one query per grid for all of them): bounds each query's time and memory.
MAX_DAYS_AT_ONCE = 31


@dataclass(frozen=True, slots=True)
class Fingerprint:
    raw_rows: int
    stats_views: int


def code(store: Store, zone: ZoneInfo, min_visitors: int) -> str:
    """What the published cells of a store were worked out with: every grid's definition, the zone and the
    threshold. Published cells of another code are not read."""
    return _code(store.settings.database, zone.key, min_visitors, lambda: _grid_keys(store, zone))


_CODES: dict[tuple[str, str, int], str] = {}


def _code(database: str, zone: str, k: int, keys: Callable[[], list[str]]) -> str:
    found = _CODES.get((database, zone, k))
    if found is None:
        found = hashlib.sha256(repr((sorted(keys()), zone, k)).encode()).hexdigest()[:24]
        _CODES[database, zone, k] = found
    return found


def _grid_keys(store: Store, zone: ZoneInfo) -> list[str]:
    today = date(2000, 1, 1)  # (keys do not depend on the day)
    return [grid.key for grid in reports.grids(store, Selection("", today, today, zone, 1))]


def with_published(store: Store, sel: Selection) -> Selection:
    """``sel`` with the published days of it and of the period before it (for "change")."""
    published = code(store, sel.zone, sel.min_visitors)
    rows = store.query(
        f"""
        SELECT DISTINCT day FROM {store.table("publications")}
        WHERE site = {{site:String}} AND code = {{code:String}}
          AND day >= {{first:Date}} AND day <= {{last:Date}}
        ORDER BY day
        """,
        {"site": sel.site, "code": published, "first": sel.previous().first, "last": sel.last},
    )
    ranges: list[list[date]] = []
    for (day,) in rows:
        if ranges and ranges[-1][1] == day - timedelta(days=1):
            ranges[-1][1] = day
        else:
            ranges.append([day, day])
    return replace(sel, published=tuple((a, b) for a, b in ranges), code=published)


class Publisher:
    def __init__(
        self,
        store: Store,
        zone: ZoneInfo,
        min_visitors: int,
        clock: Clock,
        *,
        grace: timedelta = timedelta(minutes=10),
        check_every: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._zone = zone
        self._k = min_visitors
        self._clock = clock
        self._grace = grace  # after a day's end, for what is still in the spool
        self._check_every = check_every
        self._monotonic = monotonic
        self._checked_at: float | None = None
        self._todo: list[tuple[str, date, Fingerprint]] = []  # newest first
        self._current: _Publication | None = None
        self.published = 0  # days, since start

    def step(self, budget: float) -> bool:
        """Publish for up to ``budget`` seconds (at least one query); True when nothing is left to do."""
        until = self._monotonic() + budget
        if self._checked_at is None or self._monotonic() - self._checked_at >= self._check_every:
            self._check()
        while self._current is not None or self._todo:
            if self._current is None:
                self._current = self._begin(self._next_days())
            if self._current.advance(self._store):
                self._finish(self._current)
                self._current = None
            if self._monotonic() >= until:
                break
        return self._current is None and not self._todo

    def check_now(self) -> None:
        """Look for days to publish at the next step, not only every ``check_every`` seconds."""
        self._checked_at = None

    # -- what to publish ----------------------------------------------------------------------------------

    def _check(self) -> None:
        self._checked_at = self._monotonic()
        store, zone, now = self._store, self._zone.key, self._clock()
        last = (now - self._grace).astimezone(self._zone).date() - timedelta(days=1)
        raw = store.query(
            f"SELECT site, toDate(ts, '{zone}') AS day, count() FROM {store.table('page_views')} "
            "GROUP BY site, day"
        )
        stats = store.query(
            f"SELECT site, day, sum(page_views) FROM {store.table('daily_stats')} "
            "WHERE topic = {all:String} GROUP BY site, day",
            {"all": ALL_TOPICS},
        )
        found: dict[tuple[str, date], list[int]] = {}
        for site, day, rows in raw:
            found.setdefault((site, day), [0, 0])[0] = int(rows)
        for site, day, views in stats:
            found.setdefault((site, day), [0, 0])[1] = int(views)
        done = {
            (site, day): Fingerprint(int(rows), int(views))
            for site, day, rows, views in store.query(
                f"""
                SELECT site, day, argMax(raw_rows, version), argMax(stats_views, version)
                FROM {store.table("publications")} WHERE code = {{code:String}} GROUP BY site, day
                """,
                {"code": self._code()},
            )
        }
        # Days without page views between a site's first and yesterday are published too (with no cells,
        # which costs nothing): a view of a range with quiet days then reads only published cells.
        for site in {site for site, _ in found}:
            day = min(day for s, day in found if s == site)
            while day <= last:
                found.setdefault((site, day), [0, 0])
                day += timedelta(days=1)
        todo = [
            (site, day, Fingerprint(*counts))
            for (site, day), counts in found.items()
            if day <= last and done.get((site, day)) != Fingerprint(*counts)
        ]
        self._todo = sorted(todo, key=lambda item: (item[1], item[0]), reverse=True)
        self._sweep()

    def _code(self) -> str:
        return code(self._store, self._zone, self._k)

    # -- publishing days ----------------------------------------------------------------------------------

    def _next_days(self) -> tuple[str, dict[date, Fingerprint]]:
        """The next days to publish together: the newest waiting, and the days before it of the same site
        that wait too, up to ``MAX_DAYS_AT_ONCE`` (one query per grid does them all)."""
        site, day, fingerprint = self._todo.pop(0)
        days = {day: fingerprint}
        while self._todo and len(days) < MAX_DAYS_AT_ONCE:
            next_site, next_day, next_fingerprint = self._todo[0]
            if next_site != site or next_day != day - timedelta(days=len(days)):
                break
            days[next_day] = next_fingerprint
            self._todo.pop(0)
        return site, days

    def _begin(self, chunk: tuple[str, dict[date, Fingerprint]]) -> _Publication:
        site, days = chunk
        sel = Selection(site, min(days), max(days), self._zone, self._k)
        empty = all(fingerprint == Fingerprint(0, 0) for fingerprint in days.values())
        grids = [] if empty else reports.grids(self._store, sel)
        return _Publication(site, days, time.time_ns(), grids, self._k)

    def _finish(self, publication: _Publication) -> None:
        days = sorted(publication.days)
        count = len(days)
        self._store.insert_columns(
            "publications",
            {
                "site": [publication.site] * count,
                "day": days,
                "version": [publication.version] * count,
                "code": [self._code()] * count,
                "raw_rows": [publication.days[day].raw_rows for day in days],
                "stats_views": [publication.days[day].stats_views for day in days],
                "published": [self._clock()] * count,
            },
        )
        self.published += count

    def _sweep(self) -> None:
        """Remove versions superseded a while ago (a view may still read one just superseded), those of
        another code, and the cells of publications that never finished."""
        store, now = self._store, self._clock()
        publications, cells = store.table("publications"), store.table("published_cells")
        params = {"code": self._code(), "kept": now - KEEP_SUPERSEDED}
        gone = [
            (site, day, int(version))
            for site, day, version in store.query(
                f"""
                SELECT p.site, p.day, p.version FROM {publications} AS p
                LEFT JOIN (
                    SELECT site, day, max(version) AS settled FROM {publications}
                    WHERE code = {{code:String}} AND published < {{kept:DateTime64(3, 'UTC')}}
                    GROUP BY site, day
                ) AS s ON p.site = s.site AND p.day = s.day
                WHERE p.code != {{code:String}} OR p.version < s.settled
                """,
                params,
            )
        ]
        if gone:  # (by day: one version covers several days, and only some of them may be superseded)
            which = "(site, day, version) IN {gone:Array(Tuple(String, Date, UInt64))}"
            store.command(f"DELETE FROM {cells} WHERE {which}", {"gone": gone})
            store.command(f"DELETE FROM {publications} WHERE {which}", {"gone": gone})
        unfinished = f"version < {{before:UInt64}} AND version NOT IN (SELECT version FROM {publications})"
        # Cells from raw page views are not read past raw retention: they go with them.
        expired = (
            f"raw AND day < toDate({{now:DateTime64(3, 'UTC')}}, '{self._zone.key}') - {{raw_days:UInt32}}"
        )
        params = {
            "before": int((now - UNFINISHED_AFTER).timestamp() * 1e9),
            "now": now,
            "raw_days": store.settings.raw_retention_days,
        }
        for condition in (unfinished, expired):
            if store.query(f"SELECT count() FROM {cells} WHERE {condition}", params)[0][0]:
                store.command(f"DELETE FROM {cells} WHERE {condition}", params)


class _Publication:
    """Days of one site being published together: their grids, one query each."""

    def __init__(
        self, site: str, days: dict[date, Fingerprint], version: int, grids: list[Grid], k: int
    ) -> None:
        self.site = site
        self.days = days
        self.version = version
        self._grids = grids
        self._k = k

    def advance(self, store: Store) -> bool:
        """Publish the next grid; True when every grid is in."""
        if self._grids:
            grid = self._grids.pop()
            table = store.table("published_cells")
            segments = [f"toString({segment})" for segment in grid.segments]
            segments += ["''"] * (MAX_SEGMENTS - len(grid.segments))
            metrics = [metric if metric in grid.metrics else "0" for metric in METRICS]
            store.command(
                f"""
                INSERT INTO {table} (site, grid, day, version, raw, s1, s2, s3, s4, s5,
                                     {", ".join(METRICS)}, visitors)
                SELECT {{p_site:String}}, {{p_grid:String}}, day, {{p_version:UInt64}}, {int(grid.raw)},
                       {", ".join(segments)}, {", ".join(metrics)}, visitors
                FROM ({grid.live})
                """,
                {
                    **grid.params,
                    "k": self._k,
                    "p_site": self.site,
                    "p_grid": grid.key,
                    "p_version": self.version,
                },
            )
        return not self._grids
