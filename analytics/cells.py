"""The cell rule the dashboard's numbers are made of, and where the cells come from.

A *cell* is one day (in the site's time zone) of one segment (a topic, a page, a country, ... within the
chosen filters); it counts only when ``min_visitors`` distinct visitors make it up that day, and what its
parents leave out is not small either (``_gated``). A *grid* is every cell of one kind of table (its
segments, metrics and source), day by day.

Whether a cell counts depends on its day alone, and a day that is over does not change (today is never
shown). So a grid's cells of finished days are worked out once and kept (``koekje.analytics.publish``
fills ``published_cells``), and a report reads them: a few thousand rows for a year instead of the millions
of page views and statistics they come from. A day not published yet is worked out from the source, as it
always could be: the two give the same cells (a test holds them to that), so publication only makes
reports fast, never different.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .aggregates import ALL_TOPICS, source_expression
from .store import Store

DIMENSIONS = ("topic", "country", "device", "source")
# The metrics a grid may carry (the published cells' columns), and at most this many segments.
METRICS = ("views", "visits", "returning")
MAX_SEGMENTS = 5


@dataclass(frozen=True, slots=True)
class Filters:
    topic: str | None = None
    country: str | None = None
    device: str | None = None
    source: str | None = None

    def active(self) -> list[tuple[str, str]]:
        return [(name, value) for name in DIMENSIONS if (value := getattr(self, name)) is not None]


@dataclass(frozen=True, slots=True)
class Selection:
    """What a report is about: a site, whole days from ``first`` to ``last``, filters, and the threshold;
    and which of its days (and the period before it) have published cells (``published``: ranges of days,
    first and last included), under which ``versions``, less the ``superseded`` days of those versions
    (see ``koekje.analytics.publish.with_published``); and the whole months of those days rolled up into one
    cell per segment (``months``), for reports that sum over days."""

    site: str
    first: date
    last: date
    zone: ZoneInfo
    min_visitors: int
    filters: Filters = Filters()
    published: tuple[tuple[date, date], ...] = ()
    versions: tuple[int, ...] = ()
    superseded: tuple[tuple[date, int], ...] = ()
    # Whole months rolled up from the days read: (first day, version). The days of erased visitors
    # (``_raw_days``), as they were when the publications were read.
    months: tuple[tuple[date, int], ...] = ()
    erased: tuple[date, ...] = ()

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> Selection:
        """The period of the same length just before this one (for "change")."""
        return replace(
            self, first=self.first - timedelta(days=self.days), last=self.first - timedelta(days=1)
        )

    def start(self) -> datetime:
        return datetime.combine(self.first, time(), self.zone)

    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), self.zone)

    def day_list(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.days)]

    def live_days(self) -> list[date]:
        """The days whose cells are worked out from the source (not published)."""
        return [day for day in self.day_list() if not any(a <= day <= b for a, b in self.published)]

    def published_ranges(self) -> list[tuple[date, date]]:
        """The ranges of days whose cells are read from the published ones."""
        clipped = [(max(a, self.first), min(b, self.last)) for a, b in self.published]
        return [(a, b) for a, b in clipped if a <= b]


@dataclass(frozen=True, slots=True)
class Cells:
    """Where a table's cells come from: ``inner`` gives one row per ``segments`` and day, with the
    ``metrics``, ``visitors`` and ``state`` (a ``merge`` distinct-count state of the visitors), for the days
    in ``{live_days}``. ``segments`` are the table's own (``shown``) followed by the dimensions of its
    filters: a filter is gated as a segment and applied after the gate (``keep``), so a filtered table is
    exactly a slice of a bigger table whose every cell passed the rule. ``raw``: made of raw page views,
    which end with raw retention and leave out the days of erased visitors (see ``raw_cells``)."""

    inner: str
    params: dict[str, Any]
    segments: tuple[str, ...]
    shown: tuple[str, ...]
    keep: str
    merge: str
    metrics: tuple[str, ...]
    raw: bool = False

    def _ties(self) -> tuple[str, ...]:
        """For the grid's key: a grid whose segments are not in the order ties are broken in had its cells
        worked out with another order before koekje 0.2 (``_canonical``), so it is published again."""
        canonical = sorted(self.segments, key=_canonical)
        return () if list(self.segments) == canonical else ("ties in the dimensions' order",)

    def grid(self) -> Grid:
        columns = ", ".join([*self.segments, "day", *self.metrics, "visitors"])
        return Grid(
            f"SELECT {columns} FROM ({_gated(self)}) WHERE ok",
            self.params,
            self.segments,
            self.metrics,
            self.raw,
            _key(self.inner, self.segments, self.metrics, self.merge, *self._ties()),
        )


@dataclass(frozen=True, slots=True)
class Grid:
    """The cells that count of one kind of table, per day: ``live`` gives them from the source (segments,
    ``day``, metrics, ``visitors``) for the days in ``{live_days}``; ``key`` names the kind (a digest of how
    it is worked out: a change of definition is a new key, never old cells under a new meaning)."""

    live: str
    params: dict[str, Any]
    segments: tuple[str, ...]
    metrics: tuple[str, ...]
    raw: bool
    key: str


def _key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


# How many of the smallest counted cells of one parent may be left out to make its remainder big enough,
# before all of them are. (One is always enough when segments do not overlap; topics do.)
MAX_LEFT_OUT = 3


def _canonical(segment: str) -> tuple[int, str]:
    """A segment's place in the one order ties are broken in: the dimensions' order, then the rest by name
    (a filter's column is ``f_<dimension>`` in raw cells)."""
    name = segment.removeprefix("f_")
    return (DIMENSIONS.index(name) if name in DIMENSIONS else len(DIMENSIONS), name)


def _gated(cells: Cells) -> str:
    """The cells with an ``ok`` column: whether the cell counts.

    A cell counts with ``min_visitors`` (``k``) or more visitors. That alone is not enough: what a table does
    not show is a remainder (the total one level up minus the rows shown), and a remainder of 1 to k-1
    visitors would be as good as shown. So for every parent of a cell (its day, and its day with every
    proper subset of its segments: for topic by country, the day, the day and topic, the day and country),
    both the parent's visitors who are in no counted cell, and the visitors of its cells that do not count,
    must number none or at least k. If they do not, the smallest counted cells under that parent are left
    out too, up to ``MAX_LEFT_OUT`` of them (one is enough unless segments overlap, as topics do); if that is
    still not enough, nothing under that parent counts.

    Every parent is worked out in the same three steps, over the cells repeated once per parent (``m``, a
    bit mask of the segments the parent keeps; the others read as NUL in its key): each cell's rank
    among its parent's, each parent's remainders, and each cell's verdict under each parent. So the query
    is the same size whatever the number of parents, and reads the cells three times, not once per parent."""
    segments, merge = cells.segments, cells.merge
    if not segments:  # a total: nothing under it is shown beside it
        return f"SELECT *, visitors >= {{k:UInt32}} AS ok FROM ({cells.inner})"
    seg = ", ".join(segments)
    # Ties between cells of as many visitors are broken in one order of the segments, whatever order the
    # table asked for them in (found by a helper: devices with a topic filter and topic by device left out
    # different cells of a tie, so one number had two answers, and each table gave away a cell the other
    # hid).
    tied = ", ".join(sorted(segments, key=_canonical))
    masks = list(range(2 ** len(segments) - 1))  # every proper subset of the segments
    key = ", ".join(f"if(bitTest(m, {bit}), toString({name}), '\\0')" for bit, name in enumerate(segments))
    repeated = f"""
        SELECT {seg}, day, visitors, state, m, tuple({key}) AS parent,
               row_number() OVER (PARTITION BY m, day, parent, visitors >= {{k:UInt32}}
                                  ORDER BY visitors, {tied}) AS rank
        FROM ({cells.inner}) ARRAY JOIN {masks} AS m
    """

    def counted(n: int) -> str:
        return f"visitors >= {{k:UInt32}} AND rank > {n}"

    remainders = ",\n".join(
        f"toInt64({merge}Merge(state)) - toInt64({merge}MergeIf(state, {counted(n)})) AS out_{n}, "
        f"toInt64({merge}MergeIf(state, NOT ({counted(n)}))) AS hid_{n}"
        for n in range(MAX_LEFT_OUT + 1)
    )
    steps = "".join(
        f"(p.out_{n} = 0 OR p.out_{n} >= {{k:UInt32}}) AND (p.hid_{n} = 0 OR p.hid_{n} >= {{k:UInt32}}), "
        f"r.rank > {n}, "
        for n in range(MAX_LEFT_OUT + 1)
    )
    verdicts = f"""
        SELECT {", ".join(f"r.{name} AS {name}" for name in segments)}, r.day AS day,
               min(multiIf({steps}0)) AS fine
        FROM ({repeated}) AS r
        INNER JOIN (
            SELECT m, day, parent, {remainders} FROM ({repeated}) GROUP BY m, day, parent
        ) AS p ON r.m = p.m AND r.day = p.day AND r.parent = p.parent
        GROUP BY {seg}, day
    """
    on = " AND ".join(f"c.{column} = v.{column}" for column in (*segments, "day"))
    return f"""
        SELECT c.*, c.visitors >= {{k:UInt32}} AND v.fine AS ok
        FROM ({cells.inner}) AS c
        INNER JOIN ({verdicts}) AS v ON {on}
    """


def source(
    store: Store, grid: Grid, sel: Selection, spans: Sequence[tuple[date, date]] = ()
) -> tuple[str, dict[str, Any]]:
    """The cells of ``grid`` that count, for the selection's days: published ones where there are, the rest
    worked out now. Columns: the grid's segments, ``day``, its metrics, ``visitors``.

    For a report that sums days within ``spans`` (first and last day), a whole month inside one of them
    that is rolled up is read as one row per segment dated its first day, instead of a row per day."""
    parts, params = [], {**grid.params, "k": sel.min_visitors}
    published = sel.published_ranges()
    names = [f"s{n + 1} AS {segment}" for n, segment in enumerate(grid.segments)]  # (the stored columns)
    months = [
        (month, version)
        for month, version in sel.months
        if any(first <= month and month_end(month) <= last for first, last in spans)
    ]
    if grid.raw:  # cells from raw page views: a month counts only when every day of it would (``_raw_days``)
        erased = {day.replace(day=1) for day in sel.erased}
        months = [(month, version) for month, version in months if month not in erased]
    if months:
        retained = f"> toDate(now(), '{sel.zone.key}') - {{raw_days:UInt32}}"
        usable = "toStartOfMonth(day) IN {p_months:Array(Date)}"
        columns = ", ".join([*names, "month AS day", *grid.metrics, "visitors"])
        where = [
            "site = {site:String}",
            "grid = {p_grid:String}",
            "(month, version) IN {p_rolled:Array(Tuple(Date, UInt64))}",
        ]
        if grid.raw:
            usable += f" AND toStartOfMonth(day) {retained}"
            where.append(f"month {retained}")
        parts.append(f"SELECT {columns} FROM {store.table('published_months')} WHERE {' AND '.join(where)}")
        params.update({"p_months": [month for month, _ in months], "p_rolled": months})
    if published:
        columns = ", ".join([*names, "day", *grid.metrics, "visitors"])
        days = " OR ".join(
            f"day BETWEEN {{p_from_{n}:Date}} AND {{p_to_{n}:Date}}" for n in range(len(published))
        )
        # The newest complete version of each day: a few versions (one per publication pass), less the days
        # of them published again since (none once superseded versions are swept). A subquery on the
        # publications here would cost more than the rest of a small report's query.
        where = [
            "site = {site:String}",
            "grid = {p_grid:String}",
            f"({days})",
            "version IN {p_versions:Array(UInt64)}",
        ]
        if sel.superseded:
            where.append("(day, version) NOT IN {p_superseded:Array(Tuple(Date, UInt64))}")
        if grid.raw:  # ``_raw_days``, with the erased visitors' days as found with the publications
            where.append(f"day > toDate(now(), '{sel.zone.key}') - {{raw_days:UInt32}}")
            if sel.erased:
                where.append("day NOT IN {p_erased:Array(Date)}")
        if months:  # (the days of the months read rolled up)
            where.append(f"NOT ({usable})")
        parts.append(f"SELECT {columns} FROM {store.table('published_cells')} WHERE {' AND '.join(where)}")
        params.update(
            {
                "p_versions": list(sel.versions),
                "p_superseded": list(sel.superseded),
                "p_erased": list(sel.erased),
            }
        )
        for n, (first, last) in enumerate(published):
            params.update({f"p_from_{n}": first, f"p_to_{n}": last})
    if published or months:
        params.update({"site": sel.site, "p_grid": grid.key, "raw_days": _raw_days_kept(store)})
    if sel.live_days():
        parts.append(grid.live)
    return "\nUNION ALL\n".join(f"SELECT * FROM ({part})" for part in parts), params


def month_end(month: date) -> date:
    """The last day of the month that begins on ``month``."""
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return following - timedelta(days=1)


# -- where the cells come from ---------------------------------------------------------------------------


def _keep(sel: Selection, column: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The filters as a condition on the gated cells (``column`` names each dimension's column there)."""
    conditions, params = [], {}
    for name, value in sel.filters.active():
        conditions.append(f"{column[name]} = {{f_{name}:String}}")
        params[f"f_{name}"] = value
    return " AND ".join(conditions) or "1", params


def stats_cells(store: Store, sel: Selection, by: Sequence[str]) -> Cells:
    """Cells from the daily statistics: one row per ``by`` (and filter dimension) and day, with views,
    visits, returning visits and visitors (distinct on that day)."""
    dims = [*by, *(name for name, _ in sel.filters.active() if name not in by)]
    params: dict[str, Any] = {
        "site": sel.site,
        "first": sel.first,
        "last": sel.last,
        "all": ALL_TOPICS,
        "live_days": sel.live_days(),
    }
    where = [
        "site = {site:String}",
        "day >= {first:Date}",
        "day <= {last:Date}",
        "day IN {live_days:Array(Date)}",
    ]
    where.append("topic != {all:String}" if "topic" in dims else "topic = {all:String}")
    keep, filter_params = _keep(sel, {name: name for name in DIMENSIONS})
    seg = "".join(f"{column}, " for column in dims)
    inner = f"""
        SELECT {seg}day, sum(page_views) AS views, sum(visits) AS visits,
               sum(returning_visits) AS returning, uniqMerge(s.visitors) AS visitors,
               uniqMergeState(s.visitors) AS state
        FROM {store.table("daily_stats")} AS s
        WHERE {" AND ".join(where)}
        GROUP BY {seg}day
    """
    return Cells(inner, {**params, **filter_params}, tuple(dims), tuple(by), keep, "uniq", METRICS)


# Topics as raw rows give them: a page without one counts as "" (no topic), as in the daily statistics.
RAW_TOPICS = "ARRAY JOIN if(empty(v.topics), [''], v.topics) AS topic"
_RAW_FILTERS = {"country": "v.country", "device": "v.device", "source": source_expression("v")}


def _raw_days_kept(store: Store) -> int:
    return store.settings.raw_retention_days - 1


def _raw_days(store: Store, sel: Selection, day: str) -> list[str]:
    """Only days wholly inside raw retention (the oldest day loses rows while it is looked at, and the
    difference between two looks would be one visitor's), and no day on which an erased visitor had page
    views (the statistics still count them: see ``migrations._erased_days``)."""
    return [
        f"{day} > toDate(now(), '{sel.zone.key}') - {{raw_days:UInt32}}",
        f"{day} NOT IN (SELECT day FROM {store.table('erased_days')} WHERE site = {{site:String}})",
    ]


def raw_cells(
    store: Store,
    sel: Selection,
    by: dict[str, str],
    metrics: dict[str, str] | None = None,
    where: Sequence[str] = (),
    array_join: str = "",
) -> Cells:
    """Cells from raw page views: one row per ``by`` (alias: expression), filter dimension and day (see
    ``_raw_days`` for the days left out)."""
    params: dict[str, Any] = {
        "site": sel.site,
        "start": sel.start(),
        "end": sel.end(),
        "raw_days": _raw_days_kept(store),
        "live_days": sel.live_days(),
    }
    day = f"toDate(v.ts, '{sel.zone.key}')"
    conditions = [
        "v.site = {site:String}",
        "v.ts >= {start:DateTime64(3, 'UTC')}",
        "v.ts < {end:DateTime64(3, 'UTC')}",
        f"{day} IN {{live_days:Array(Date)}}",
        *_raw_days(store, sel, day),
        *where,
    ]
    columns = dict(by)
    names = {}
    for name, _ in sel.filters.active():
        if name == "topic":
            if "topic" not in columns:
                array_join = array_join or RAW_TOPICS
                columns["topic"] = "topic"
            names[name] = "topic"
        else:
            columns[f"f_{name}"] = _RAW_FILTERS[name]
            names[name] = f"f_{name}"
    keep, filter_params = _keep(sel, names)
    metrics = metrics or {"views": "count()", "visits": "countIf(v.entry)"}
    seg = "".join(f"{expression} AS {alias}, " for alias, expression in columns.items())
    measured = "".join(f"{expression} AS {alias}, " for alias, expression in metrics.items())
    inner = f"""
        SELECT {seg}{day} AS day, {measured}uniqExact(v.visitor_id) AS visitors,
               uniqExactState(v.visitor_id) AS state
        FROM {store.table("page_views")} AS v {array_join}
        WHERE {" AND ".join(conditions)}
        GROUP BY {", ".join([*columns, "day"])}
    """
    return Cells(
        inner,
        {**params, **filter_params},
        tuple(columns),
        tuple(by),
        keep,
        "uniqExact",
        tuple(metrics),
        raw=True,
    )
