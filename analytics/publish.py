"""Publishing the cells of finished days, so that a dashboard view sums stored cells instead of working the
cell rule out over millions of rows (see ``koekje.analytics.cells``).

The loader's thread calls ``Publisher.step`` after each pass, with a time budget, so loading never waits
long: a few days of one *group* of grids are published one query per grid, newest days first. A group is
what the views need under one kind of filter (``reports.filter_group``): the views without a filter
always, and a kind of filter once a view has asked for it (``publication_wants``, forgotten after
``WANT_DAYS`` without a view), so a site pays for the filters its marketers use, not for all eleven. A day
of a group counts as published only once all its grids are in, under one version (``publications``); a
view reads the newest complete version of each day and works the rest out itself.

A day is published again when what it is made of changes (page views loaded late, an erasure, the
statistics' page views): each day's raw row count and statistics page views are its fingerprint, checked
every ``check_every`` seconds. A change of ``min_visitors``, of the time zone or of how a grid is worked
out (an upgrade) is a new ``code``, and every day is published again. How many days go into one query
follows how long the last ones took, so that no query holds the store for long.

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

from . import migrations, reports
from .aggregates import ALL_TOPICS
from .cells import MAX_SEGMENTS, METRICS, Grid, Selection, month_end
from .clock import Clock
from .store import Store

log = logging.getLogger("koekje.analytics")

# Published days are read for this long after a newer version of them is in: views that began before.
KEEP_SUPERSEDED = timedelta(minutes=10)
UNFINISHED_AFTER = timedelta(hours=1)
# A kind of filter nobody has asked for in this many days is no longer published for new days.
WANT_DAYS = migrations.WANT_DAYS
# Days published together: one query per grid does them all. Fewer when queries grow slow.
MAX_DAYS_AT_ONCE = 31
MAX_QUIET_DAYS_AT_ONCE = 1000  # days without page views (published with no cells) in one go
SLOW_QUERY = 2.0  # seconds: the next publication takes half as many days
FAST_QUERY = 0.5  # seconds: twice as many


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """A kind of filter's published days: finished days published as they are now, and days waiting (not
    yet, changed since, or published by reports of another definition); its views work those out live."""

    filters: str
    published: int
    waiting: int
    oldest_waiting: date | None
    # Of the days waiting, those without page views (a new site's quiet days as far back as a view reaches:
    # published as empty, at once). Found by a helper: a new site said 800 days were waiting, and nothing
    # said why.
    quiet: int = 0


@dataclass(frozen=True, slots=True)
class Fingerprint:
    raw_rows: int
    stats_views: int


def code(store: Store, zone: ZoneInfo, min_visitors: int, group: str = "", rolled: bool = False) -> str:
    """What a group's published cells were worked out with: each of its grids' definition, the zone and the
    threshold. Published cells of another code are not read. ``rolled``: the code of its whole months, which
    also says which grids they hold (a grid read rolled up from a new version is in no older roll-up)."""
    key = (store.settings.database, zone.key, min_visitors, group, rolled)
    found = _CODES.get(key)
    if found is None:
        day = date(2000, 1, 1)  # (keys do not depend on the day)
        grids = reports.grids(store, Selection("", day, day, zone, 1), group, rolled=rolled)
        found = hashlib.sha256(repr((sorted(g.key for g in grids), key)).encode()).hexdigest()[:24]
        _CODES[key] = found
    return found


_CODES: dict[tuple[str, str, int, str, bool], str] = {}
_WANTED: dict[tuple[str, str, str], float] = {}  # (database, site, group): when this process said so
_SAY_AGAIN = 3600.0  # seconds


def with_published(
    store: Store, sel: Selection, monotonic: Callable[[], float] = time.monotonic
) -> Selection:
    """``sel`` with the published days of it and of the period before it (for "change"), and the versions
    to read them from. A kind of filter not published yet is asked for (``publication_wants``)."""
    group = reports.filter_group(sel.filters)
    published = code(store, sel.zone, sel.min_visitors, group)
    if group:
        _want(store, sel.site, group, monotonic())
    first, last = sel.previous().first, sel.last
    rows = store.query(
        f"""
        SELECT 0 AS rolled, day AS at, version, toUInt64(0) AS made_of FROM {store.table("publications")}
        WHERE site = {{site:String}} AND filters = {{group:String}} AND code = {{code:String}}
          AND day >= {{first:Date}} AND day <= {{last:Date}}
        UNION ALL
        SELECT 1, month, version, made_of FROM {store.table("rollups")}
        WHERE site = {{site:String}} AND filters = {{group:String}} AND code = {{rolled:String}}
          AND month >= {{first:Date}} AND month <= {{last:Date}}
        UNION ALL
        SELECT 2, day, 0, 0 FROM {store.table("erased_days")}
        WHERE site = {{site:String}} AND day >= {{first:Date}} AND day <= {{last:Date}}
        """,
        {
            "site": sel.site,
            "group": group,
            "code": published,
            "rolled": code(store, sel.zone, sel.min_visitors, group, rolled=True),
            "first": first,
            "last": last,
        },
    )
    days = [(day, int(version)) for kind, day, version, _ in rows if kind == 0]
    erased = sorted({day for kind, day, _, _ in rows if kind == 2})
    newest: dict[date, int] = {}
    for day, version in days:
        newest[day] = max(newest.get(day, 0), version)
    versions = set(newest.values())
    # A version still read for other days, but no longer for these (published again since, not swept yet).
    superseded = sorted((day, v) for day, v in days if v in versions and v != newest[day])
    # A month rolled up from the newest version of each of its days (the newest such roll-up).
    months: dict[date, int] = {}
    for kind, month, version, made_of in sorted(rows, key=lambda row: row[2]):
        if kind == 1 and month_digest(month, newest) == made_of:
            months[month] = int(version)
    ranges: list[list[date]] = []
    for day in sorted(newest):
        if ranges and ranges[-1][1] == day - timedelta(days=1):
            ranges[-1][1] = day
        else:
            ranges.append([day, day])
    return replace(
        sel,
        published=tuple((a, b) for a, b in ranges),
        versions=tuple(sorted(versions)),
        superseded=tuple(superseded),
        months=tuple(sorted(months.items())),
        erased=tuple(erased),
    )


def month_digest(month: date, versions: dict[date, int]) -> int | None:
    """What a month's roll-up is made of: the version of each of its days (None while a day is missing)."""
    days = [month + timedelta(days=n) for n in range((month_end(month) - month).days + 1)]
    if any(day not in versions for day in days):
        return None
    made_of = repr([(day.isoformat(), versions[day]) for day in days]).encode()
    return int.from_bytes(hashlib.blake2b(made_of, digest_size=8).digest(), "big")


def _want(store: Store, site: str, group: str, now: float) -> None:
    key = (store.settings.database, site, group)
    said = _WANTED.get(key)
    if said is not None and now - said < _SAY_AGAIN:
        return
    store.command(
        f"INSERT INTO {store.table('publication_wants')} (site, filters, asked) "
        "VALUES ({site:String}, {group:String}, now64(3))",
        {"site": site, "group": group},
    )
    _WANTED[key] = now


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
        self._todo: list[tuple[str, str, date, Fingerprint]] = []  # site, group, day: in order
        self._current: _Publication | None = None
        self._months_due = False  # whether to look for months to roll up once the days are done
        self._rollups: list[tuple[str, str, dict[date, int]]] = []  # site, group, {day: version}
        self._days_at_once = 7
        self.published = 0  # days (of a group), since start

    def step(self, budget: float) -> bool:
        """Publish for up to ``budget`` seconds (at least one query); True when nothing is left to do."""
        until = self._monotonic() + budget
        due = self._checked_at is None or self._monotonic() - self._checked_at >= self._check_every
        if due and self._current is None:  # (never in the middle of one: its days would be queued again)
            self._check()
        while self._current is not None or self._todo or self._rollups or self._months_due:
            if self._current is None and self._todo:
                self._current = self._begin()
            if self._current is not None:
                if self._current.advance(self._store, self._monotonic):
                    self._finish(self._current)
                    self._current = None
            elif self._months_due:
                self._months_due = False
                self._rollups = self._months()
            else:
                self._roll_up(*self._rollups.pop(0))
            if self._monotonic() >= until:
                break
        return self._current is None and not self._todo and not self._rollups and not self._months_due

    def check_now(self) -> None:
        """Look for days to publish at the next step, not only every ``check_every`` seconds."""
        self._checked_at = None

    # -- what to publish ----------------------------------------------------------------------------------

    def _check(self) -> None:
        self._checked_at = self._monotonic()
        self._todo = [item for _, _, waiting in self._waiting() for item in waiting]
        self._months_due = True
        self._sweep()

    def _waiting(self) -> list[tuple[str, int, list[tuple[str, str, date, Fingerprint]]]]:
        """Per kind of filter (the views without one first): the group, how many finished days are published
        as they are now, and the (site, group, day, fingerprint) of those waiting, newest first."""
        found = self._fingerprints()
        last = (self._clock() - self._grace).astimezone(self._zone).date() - timedelta(days=1)
        groups = []
        for group in self._groups():
            done = self._published(group)
            waiting, current = [], 0
            for (site, day), fingerprint in sorted(found.items(), key=lambda item: item[0][1], reverse=True):
                if day > last:
                    continue
                if done.get((site, day)) != fingerprint:
                    waiting.append((site, group, day, fingerprint))
                else:
                    current += 1
            groups.append((group, current, waiting))
        return groups

    def status(self) -> list[GroupStatus]:
        """What is published, per kind of filter the views asked for (read only: publishes nothing)."""
        return [
            GroupStatus(
                group or "(none)",
                current,
                len(waiting),
                min((d for *_, d, _ in waiting), default=None),
                sum(1 for *_, found in waiting if not (found.raw_rows or found.stats_views)),
            )
            for group, current, waiting in self._waiting()
        ]

    def _fingerprints(self) -> dict[tuple[str, date], Fingerprint]:
        """Per site and day: the raw page views and the statistics' page views. Days without either are there
        too, with none, from as far back as a view and the period before it reach (or the site's first day,
        if older): published with no cells, which costs nothing, so that a view of a range with quiet days,
        or of days before the site began, reads only published cells."""
        store, zone = self._store, self._zone.key
        raw = store.query(
            f"SELECT site, toDate(ts, '{zone}') AS day, count() FROM {store.table('page_views')} "
            "GROUP BY site, day"
        )
        stats = store.query(
            f"SELECT site, day, sum(page_views) FROM {store.table('daily_stats')} "
            "WHERE topic = {all:String} GROUP BY site, day",
            {"all": ALL_TOPICS},
        )
        counts: dict[tuple[str, date], list[int]] = {}
        for site, day, rows in raw:
            counts.setdefault((site, day), [0, 0])[0] = int(rows)
        for site, day, views in stats:
            counts.setdefault((site, day), [0, 0])[1] = int(views)
        today = self._clock().astimezone(self._zone).date()
        reach = today - timedelta(days=2 * reports.MAX_RANGE_DAYS)
        for site in {site for site, _ in counts}:
            day = min(reach, *(day for s, day in counts if s == site))
            while day < today:
                counts.setdefault((site, day), [0, 0])
                day += timedelta(days=1)
        return {key: Fingerprint(*values) for key, values in counts.items()}

    def _groups(self) -> list[str]:
        """The views without filters first, then the kinds of filter asked for, most recently first."""
        store = self._store
        wanted = store.query(
            f"SELECT filters, max(asked) AS last FROM {store.table('publication_wants')} "
            f"WHERE asked > {{since:DateTime64(3, 'UTC')}} GROUP BY filters ORDER BY last DESC",
            {"since": self._clock() - timedelta(days=WANT_DAYS)},
        )
        allowed = set(reports.filter_groups())
        return ["", *(group for group, _ in wanted if group in allowed and group)]

    def _published(self, group: str) -> dict[tuple[str, date], Fingerprint]:
        store = self._store
        return {
            (site, day): Fingerprint(int(rows), int(views))
            for site, day, rows, views in store.query(
                f"""
                SELECT site, day, argMax(raw_rows, version), argMax(stats_views, version)
                FROM {store.table("publications")} WHERE filters = {{group:String}} AND code = {{code:String}}
                GROUP BY site, day
                """,
                {"group": group, "code": self._code(group)},
            )
        }

    def _code(self, group: str, rolled: bool = False) -> str:
        return code(self._store, self._zone, self._k, group, rolled)

    # -- publishing days ----------------------------------------------------------------------------------

    def _begin(self) -> _Publication:
        """The next days to publish together: the first waiting, and the days before it of the same site
        and group that wait too, as many as the last queries' times allow."""
        site, group, day, fingerprint = self._todo.pop(0)
        days = {day: fingerprint}
        quiet = Fingerprint(0, 0)
        busy = int(fingerprint != quiet)  # (days without page views cost nothing: they do not count)
        while self._todo and len(days) < MAX_QUIET_DAYS_AT_ONCE:
            next_site, next_group, next_day, next_fingerprint = self._todo[0]
            if (next_site, next_group, next_day) != (site, group, day - timedelta(days=len(days))):
                break
            if next_fingerprint != quiet and busy >= self._days_at_once:
                break
            busy += next_fingerprint != quiet
            days[next_day] = next_fingerprint
            self._todo.pop(0)
        empty = all(fingerprint == Fingerprint(0, 0) for fingerprint in days.values())
        sel = Selection(site, min(days), max(days), self._zone, self._k)
        grids = [] if empty else reports.grids(self._store, sel, group)
        return _Publication(site, group, days, time.time_ns(), grids, self._k)

    def _finish(self, publication: _Publication) -> None:
        days = sorted(publication.days)
        count = len(days)
        self._store.insert_columns(
            "publications",
            {
                "site": [publication.site] * count,
                "filters": [publication.group] * count,
                "day": days,
                "version": [publication.version] * count,
                "code": [self._code(publication.group)] * count,
                "raw_rows": [publication.days[day].raw_rows for day in days],
                "stats_views": [publication.days[day].stats_views for day in days],
                "published": [self._clock()] * count,
            },
        )
        self.published += count
        if publication.slowest > SLOW_QUERY:
            self._days_at_once = max(1, self._days_at_once // 2)
        elif publication.slowest < FAST_QUERY and publication.grids:
            self._days_at_once = min(MAX_DAYS_AT_ONCE, self._days_at_once * 2)

    # -- rolling whole months up -------------------------------------------------------------------------

    def _months(self) -> list[tuple[str, str, dict[date, int]]]:
        """The months whose every day is published but whose roll-up (if any) is of other versions of them,
        a year of months of a site and group at a time."""
        store, out = self._store, []
        for group in self._groups():
            params = {"group": group, "code": self._code(group), "rolled": self._code(group, rolled=True)}
            newest: dict[str, dict[date, int]] = {}
            for site, day, version in store.query(
                f"SELECT site, day, max(version) FROM {store.table('publications')} "
                "WHERE filters = {group:String} AND code = {code:String} GROUP BY site, day",
                params,
            ):
                newest.setdefault(site, {})[day] = int(version)
            rolled = {
                (site, month, int(made_of))
                for site, month, made_of in store.query(
                    f"SELECT site, month, made_of FROM {store.table('rollups')} "
                    "WHERE filters = {group:String} AND code = {rolled:String}",
                    params,
                )
            }
            for site, versions in newest.items():
                due: dict[date, int] = {}
                for month in sorted({day.replace(day=1) for day in versions}):
                    made_of = month_digest(month, versions)
                    if made_of is None or (site, month, made_of) in rolled:
                        continue
                    due.update({day: v for day, v in versions.items() if day.replace(day=1) == month})
                    if len(due) >= 366:
                        out.append((site, group, due))
                        due = {}
                if due:
                    out.append((site, group, due))
        return out

    def _roll_up(self, site: str, group: str, days: dict[date, int]) -> None:
        """Sum the cells of these days (whole months, the newest version of each day) per month, of the grids
        read rolled up (``reports.ROLLED``)."""
        store, version = self._store, time.time_ns()
        day = min(days)
        sel = Selection(site, day, day, self._zone, self._k)
        grids = [grid.key for grid in reports.grids(store, sel, group, rolled=True)]
        columns = f"s1, s2, s3, s4, s5, {', '.join(METRICS)}, visitors"
        store.command(
            f"""
            INSERT INTO {store.table("published_months")} (site, grid, month, version, raw, {columns})
            SELECT site, grid, toStartOfMonth(day) AS month, {{version:UInt64}}, raw, s1, s2, s3, s4, s5,
                   {", ".join(f"sum({metric})" for metric in METRICS)}, sum(visitors)
            FROM {store.table("published_cells")}
            WHERE site = {{site:String}} AND grid IN {{grids:Array(String)}}
              AND (day, version) IN {{days:Array(Tuple(Date, UInt64))}}
            GROUP BY site, grid, month, raw, s1, s2, s3, s4, s5
            """,
            {"site": site, "grids": grids, "days": sorted(days.items()), "version": version},
        )
        months = sorted({day.replace(day=1) for day in days})
        count = len(months)
        store.insert_columns(
            "rollups",
            {
                "site": [site] * count,
                "filters": [group] * count,
                "month": months,
                "version": [version] * count,
                "code": [self._code(group, rolled=True)] * count,
                "made_of": [month_digest(month, days) for month in months],
                "published": [self._clock()] * count,
            },
        )

    def _sweep(self) -> None:
        """Remove versions superseded a while ago (a view may still read one just superseded), those of
        another code, and the cells of publications that never finished: of days and of months."""
        for registry, cells, column in (
            ("publications", "published_cells", "day"),
            ("rollups", "published_months", "month"),
        ):
            self._sweep_versions(
                self._store.table(registry), self._store.table(cells), column, column == "month"
            )

    def _sweep_versions(self, registry: str, cells: str, column: str, rolled: bool) -> None:
        store, now = self._store, self._clock()
        params = {"kept": now - KEEP_SUPERSEDED}
        rows = store.query(
            f"""
            SELECT p.site, p.filters, p.{column}, p.version, p.code, p.version < s.settled,
                   p.published < {{kept:DateTime64(3, 'UTC')}}
            FROM {registry} AS p
            LEFT JOIN (
                SELECT site, filters, {column}, max(version) AS settled FROM {registry}
                WHERE published < {{kept:DateTime64(3, 'UTC')}}
                GROUP BY site, filters, {column}
            ) AS s ON p.site = s.site AND p.filters = s.filters AND p.{column} = s.{column}
            """,
            params,
        )
        # Of another code: a while after it was published too (a process not yet upgraded may be reading it);
        # a kind of filter this version does not know is left alone.
        known = set(reports.filter_groups())
        gone = [
            (site, group, day, int(version))
            for site, group, day, version, code, superseded, old in rows
            if group in known and (superseded or (old and code != self._code(group, rolled)))
        ]
        if gone:  # (by day: one version covers several days, and only some of them may be superseded)
            which = f"(site, {column}, version) IN {{gone:Array(Tuple(String, Date, UInt64))}}"
            versions = {"gone": [(site, day, version) for site, _, day, version in gone]}
            store.command(f"DELETE FROM {cells} WHERE {which}", versions)
            store.command(f"DELETE FROM {registry} WHERE {which}", versions)
        unfinished = f"version < {{before:UInt64}} AND version NOT IN (SELECT version FROM {registry})"
        # Cells from raw page views are not read past raw retention: they go with them.
        today = f"toDate({{now:DateTime64(3, 'UTC')}}, '{self._zone.key}')"
        expired = f"raw AND {column} < {today} - {{raw_days:UInt32}}"
        bounds: dict[str, object] = {
            # (versions are the real time they began at, whatever the publisher's clock says)
            "before": time.time_ns() - int(UNFINISHED_AFTER.total_seconds() * 1e9),
            "now": now,
            "raw_days": store.settings.raw_retention_days,
        }
        for condition in (unfinished, expired):
            if store.query(f"SELECT count() FROM {cells} WHERE {condition}", bounds)[0][0]:
                store.command(f"DELETE FROM {cells} WHERE {condition}", bounds)


class _Publication:
    """Days of one site and group being published together: its grids, one query each."""

    def __init__(
        self, site: str, group: str, days: dict[date, Fingerprint], version: int, grids: list[Grid], k: int
    ) -> None:
        self.site = site
        self.group = group
        self.days = days
        self.version = version
        self.grids = len(grids)
        self._grids = grids
        self._k = k
        self.slowest = 0.0  # seconds, of one grid's query

    def advance(self, store: Store, monotonic: Callable[[], float]) -> bool:
        """Publish the next grid; True when every grid is in."""
        if self._grids:
            grid = self._grids.pop()
            table = store.table("published_cells")
            segments = [f"toString({segment})" for segment in grid.segments]
            segments += ["''"] * (MAX_SEGMENTS - len(grid.segments))
            metrics = [metric if metric in grid.metrics else "0" for metric in METRICS]
            started = monotonic()
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
            self.slowest = max(self.slowest, monotonic() - started)
        return not self._grids
