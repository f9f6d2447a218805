"""Dashboard reports, built so that no number shown can single anybody out.

**One grid of cells.** Every number is a sum of cells. A cell is one day (in the site's time zone) of one
segment (a topic, a page, a country, ... within the chosen filters), and it counts only when at least
``min_visitors`` distinct visitors make it up that day. A cell below that counts nowhere: not in its row,
not in a total, not in a chart, not in a CSV. So every number is a sum of cells that could each be shown,
and subtracting two reports (two overlapping date ranges, a week and the day inside it) leaves a sum of such
cells again. What a table leaves out must not be small either (``_gated``), and a filter is one more
segment of a table gated as a whole (``Cells``).

**Visitors are counted per day**, as Plausible does: a visitor on three days counts three times. It is
what the anonymous daily statistics can count (their salt changes every day, see
``koekje.analytics.aggregates``), and it is what keeps visitor counts additive, so the rule above holds
for them too. Distinct visitors over a longer range would leak through differencing (the visitors of
1..10 November minus those of 1..9 November are the newcomers of the 10th).

Counts per topic, country, device and source come from the daily statistics, so they outlive raw page
views. Pages, entry and exit pages, campaigns, co-interest and engagement need the raw rows; those reports
end where raw retention ends, and leave out the days of erased visitors (``_raw``). The gate of a cell is an
exact count of distinct visitors (``uniqExact`` on raw rows; ``uniq`` on the statistics, which is exact up
to 65,536); only a remainder under a parent of more visitors than that is approximate.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .cells import (
    DIMENSIONS,
    RAW_TOPICS,
    Cells,
    Filters,
    Grid,
    Selection,
    _gated,
    _key,
    raw_cells,
    source,
    stats_cells,
)
from .ledger import Method
from .store import Store

__all__ = ["DIMENSIONS", "Filters", "Selection"]

NO_TOPIC = ""
# Filters combine at most this many at a time: each one narrows the cells, and narrow cells are where
# people could be singled out by comparing a filtered report with an unfiltered one.
MAX_FILTERS = 2
MAX_FILTER_LENGTH = 100
MAX_RANGE_DAYS = 400  # 13 months and a little
REALTIME_MINUTES = 30


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    numeric: bool = True
    filter: str | None = None  # the dimension a value of this column filters by (a link in the table)


@dataclass(slots=True)
class Table:
    """A table as the page shows it and the CSV export writes it: the same rows."""

    name: str
    title: str
    columns: list[Column]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True, slots=True)
class Series:
    """Values per day (0 for a day whose cell is below the threshold)."""

    name: str
    values: list[int]


def _cells(
    store: Store,
    cells: Cells,
    sel: Selection,
    metrics: Sequence[str],
    limit: int = 1000,
    keep: str = "1",
    per_first: int = 0,
    rolled: bool = False,
) -> list[tuple[Any, ...]]:
    """Sum the cells that count per shown segment: segment values, then metric sums, then visitors, biggest
    first (with ``per_first``, only that many rows per value of the first segment). ``keep`` (with the
    filters') leaves segments out of the table only after the gate, which must see them all: dropping the
    visitors without a referrer before it would let the total minus the rest give them away."""
    # Whole months rolled up only for the wide tables (``ROLLED``): another part to a query costs more
    # than reading a month's days of a narrow one (benchmarks/RESULTS.md, "Dashboard").
    cells_sql, params = source(store, cells.grid(), sel, [(sel.first, sel.last)] if rolled else ())
    seg = ", ".join(cells.shown)
    sums = ", ".join(f"sum({m}) AS t_{m}" for m in metrics)
    rows = store.query(
        f"""
        SELECT {seg}, {sums}, sum(visitors) AS t_visitors
        FROM ({cells_sql})
        WHERE ({cells.keep}) AND ({keep})
        GROUP BY {seg}
        ORDER BY t_{metrics[0]} DESC, {seg}
        {f"LIMIT {int(per_first)} BY {cells.shown[0]}" if per_first else ""}
        LIMIT {int(limit)}
        """,
        params,
    )
    return [tuple(row) for row in rows]


def _series(
    store: Store, cells: Cells, metrics: Sequence[str], sel: Selection
) -> dict[tuple[Any, ...], dict[str, list[int]]]:
    """Per shown segment, each metric per day of the selection (0 where the cell does not count)."""
    seg = ", ".join(cells.shown) + ", " if cells.shown else ""
    cells_sql, params = source(store, cells.grid(), sel)
    rows = store.query(f"SELECT {seg}day, {', '.join(metrics)} FROM ({cells_sql}) WHERE {cells.keep}", params)
    index = {day: n for n, day in enumerate(sel.day_list())}
    out: dict[tuple[Any, ...], dict[str, list[int]]] = {}
    width = len(cells.shown)
    for row in rows:
        day = row[width]
        if day in index:
            series = out.setdefault(tuple(row[:width]), {m: [0] * sel.days for m in metrics})
            for metric, value in zip(metrics, row[width + 1 :], strict=True):
                series[metric][index[day]] = int(value)
    return out


# -- the reports -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Totals:
    visitors: int  # summed per day
    visits: int
    views: int
    returning: int

    @property
    def views_per_visit(self) -> float | None:
        return self.views / self.visits if self.visits else None

    @property
    def returning_share(self) -> float | None:
        return self.returning / self.visits if self.visits else None


@dataclass(frozen=True, slots=True)
class Overview:
    totals: Totals
    previous: Totals
    series: dict[str, list[int]]  # visitors, visits, views per day
    engagement_seconds: float | None  # mean visible time per engaged page view (unfiltered only)
    previous_engagement_seconds: float | None
    consent_rates: list[tuple[str, float]]  # category, share of decisions granting it
    decisions: int


def overview(store: Store, sel: Selection) -> Overview:
    # This period and the one before it in one query each: the days are the same cells either way.
    both = _with_previous(sel)
    earlier, series = _split(_day_series(store, both), sel.previous().days)
    totals, previous = _sum(series), _sum(earlier)
    engaged = previous_engaged = None
    if not sel.filters.active():
        previous_engaged, engaged = _engagement(store, both, sel.first)
    rates, decisions = _consent_rates(store, sel)
    return Overview(totals, previous, series, engaged, previous_engaged, rates, decisions)


def _day_series(store: Store, sel: Selection) -> dict[str, list[int]]:
    """Views, visitors, visits and returning visits per day, of the days that count. Visits and returning
    visits count people (those who began a visit; those who came back): a day's figure counts only when it
    is k or more itself."""
    metrics = ("views", "visitors", "visits", "returning")
    series = _series(store, stats_cells(store, sel, ()), metrics, sel).get(
        (), {m: [0] * sel.days for m in metrics}
    )
    for people in ("visits", "returning"):
        series[people] = [n if n >= sel.min_visitors else 0 for n in series[people]]
    return series


def _with_previous(sel: Selection) -> Selection:
    """The selection stretched back over the period before it (for "change")."""
    return replace(sel, first=sel.previous().first)


def _split(series: dict[str, list[int]], days: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Series over two periods as the first ``days`` and the rest."""
    return {k: v[:days] for k, v in series.items()}, {k: v[days:] for k, v in series.items()}


def _sum(series: dict[str, list[int]]) -> Totals:
    return Totals(
        sum(series["visitors"]), sum(series["visits"]), sum(series["views"]), sum(series["returning"])
    )


def _engagement(store: Store, sel: Selection, split: date) -> tuple[float | None, float | None]:
    """Mean seconds a page stayed visible, over the days with enough engaged visitors: before ``split``, and
    from it on."""
    rows = store.query(
        f"""
        SELECT day >= {{split:Date}} AS later, sumIf(visible, visitors >= {{k:UInt32}}),
               sumIf(pages, visitors >= {{k:UInt32}})
        FROM (
            SELECT toDate(ts, '{sel.zone.key}') AS day, sum(visible_ms) AS visible, count() AS pages,
                   uniqExact(visitor_id) AS visitors
            FROM {store.table("engagement")}
            WHERE site = {{site:String}} AND ts >= {{start:DateTime64(3, 'UTC')}}
              AND ts < {{end:DateTime64(3, 'UTC')}}
            GROUP BY day
        )
        GROUP BY later
        """,
        {"site": sel.site, "start": sel.start(), "end": sel.end(), "k": sel.min_visitors, "split": split},
    )
    means = {bool(later): visible / pages / 1000 if pages else None for later, visible, pages in rows}
    return means.get(False), means.get(True)


# The choices a visitor made in the banner (not implied defaults, embeds, objections or erasures).
CHOICE_METHODS = (Method.BANNER, Method.SETTINGS, Method.FORM, Method.API)


def _consent_rates(store: Store, sel: Selection) -> tuple[list[tuple[str, float]], int]:
    """Per category, the share of the people who chose in the banner in the period that allowed it.

    People, not clicks: a choice that a later choice of the same day replaced (its ``previous_id``) does
    not count, so one person choosing five times is one, with their last choice. A day counts with
    ``min_visitors`` or more people; for a category, a day counts only when those who allowed it and those
    who did not are each none or k or more (otherwise "10% of 10 people" would be one person's choice)."""
    ledger = store.table("consent_ledger")
    day = f"toDate(ts, '{sel.zone.key}')"
    where = """
        site = {site:String} AND ts >= {start:DateTime64(3, 'UTC')} AND ts < {end:DateTime64(3, 'UTC')}
        AND method IN {methods:Array(String)}
    """
    final = f"""
        SELECT {day} AS day, categories FROM {ledger}
        WHERE {where} AND (consent_id, {day}) NOT IN (
            SELECT assumeNotNull(previous_id), {day} FROM {ledger} WHERE {where} AND previous_id IS NOT NULL
        )
    """
    params = {
        "site": sel.site,
        "start": sel.start(),
        "end": sel.end(),
        "k": sel.min_visitors,
        "methods": [method.value for method in CHOICE_METHODS],
    }
    people = dict(
        store.query(
            f"SELECT day, count() AS people FROM ({final}) GROUP BY day HAVING people >= {{k:UInt32}}", params
        )
    )
    if not people:
        return [], 0
    allowed = store.query(
        f"SELECT day, category, count() FROM ({final}) ARRAY JOIN categories AS category "
        "GROUP BY day, category",
        params,
    )
    k = sel.min_visitors
    granted: dict[str, int] = defaultdict(int)
    asked: dict[str, int] = defaultdict(int)
    for when, category, count in allowed:
        total = people.get(when)
        if total is None:
            continue
        if count >= k and (total - count == 0 or total - count >= k):
            granted[str(category)] += int(count)
            asked[str(category)] += int(total)
    rates = sorted(((c, granted[c] / asked[c]) for c in granted), key=lambda r: (-r[1], r[0]))
    return rates, sum(int(n) for n in people.values())


VIEWS = Column("views", "Page views")
VISITS = Column("visits", "Visits")
VISITORS = Column("visitors", "Visitors (per day)")
# Breakdown tables show page views and visitors, not visits: the visits of a segment count the people
# who began a visit in it, a group that can be smaller than k although the segment is not.


def _table_from_stats(
    store: Store,
    sel: Selection,
    name: str,
    title: str,
    by: Sequence[Column],
    limit: int = 100,
    measures: Sequence[Column] = (VIEWS,),
) -> Table:
    cells = stats_cells(store, sel, [c.key for c in by])
    rows = _cells(store, cells, sel, [c.key for c in measures], limit)
    return Table(name, title, [*by, *measures, VISITORS], rows)


TOPIC = Column("topic", "Topic", numeric=False, filter="topic")
COUNTRY = Column("country", "Country", numeric=False, filter="country")
DEVICE = Column("device", "Device", numeric=False, filter="device")
SOURCE = Column("source", "Source", numeric=False, filter="source")
PAGE = Column("path", "Page", numeric=False)


def countries(store: Store, sel: Selection) -> Table:
    return _table_from_stats(store, sel, "countries", "Countries", [COUNTRY])


def devices(store: Store, sel: Selection) -> Table:
    return _table_from_stats(store, sel, "devices", "Devices", [DEVICE])


def sources(store: Store, sel: Selection) -> Table:
    return _table_from_stats(store, sel, "sources", "Sources (campaign or referring site)", [SOURCE])


def topics(store: Store, sel: Selection, limit: int = 100) -> Table:
    """Topics ranked by page views, with the change against the previous period (both in one query)."""
    both = _with_previous(sel)
    cells = stats_cells(store, both, ["topic"])
    cells_sql, params = source(store, cells.grid(), both)
    rows = store.query(
        f"""
        SELECT topic, day >= {{now_first:Date}} AS now, sum(views), sum(visitors) FROM ({cells_sql})
        WHERE {cells.keep} GROUP BY topic, now
        """,
        {**params, "now_first": sel.first},
    )
    before = {topic: int(views) for topic, now, views, _ in rows if not now}
    ranked = sorted(((t, int(v), int(p)) for t, now, v, p in rows if now), key=lambda row: (-row[1], row[0]))
    table = Table("topics", "Topics", [TOPIC, VIEWS, VISITORS, Column("change", "Change in page views")])
    table.rows = [(*row, _change(row[1], before.get(row[0], 0))) for row in ranked[:limit]]
    return table


def _change(now: int, before: int) -> float | None:
    """The relative change, or None when there was nothing (shown) to compare with."""
    return round((now - before) / before, 3) if before else None


def rising(table: Table, count: int = 5) -> list[tuple[str, int, float | None]]:
    """The topics that gained the most page views against the previous period (new ones first)."""
    growing = [
        (row[0], row[1], row[-1])
        for row in table.rows
        if row[0] != NO_TOPIC and (row[-1] is None or row[-1] > 0)  # (pages without one: no topic to rise)
    ]
    return sorted(growing, key=lambda r: (r[2] is not None, -(r[2] or 0), -r[1]))[:count]


def topic_series(store: Store, sel: Selection, topics: Sequence[str]) -> list[Series]:
    per = _series(store, stats_cells(store, sel, ["topic"]), ["views"], sel)
    return [Series(topic, per[(topic,)]["views"] if (topic,) in per else [0] * sel.days) for topic in topics]


def topic_by(store: Store, sel: Selection, column: Column) -> Table:
    name = f"topic-{column.key}"
    return _table_from_stats(store, sel, name, f"Topic by {column.title.lower()}", [TOPIC, column], 200)


def topic_pages(store: Store, sel: Selection, per_topic: int = 3) -> Table:
    """The most viewed pages of each topic."""
    cells = _topic_page_cells(store, sel)
    return _per_topic(store, sel, cells, "topic-pages", "Top pages per topic", PAGE, per_topic)


def topic_sources(store: Store, sel: Selection, per_topic: int = 3) -> Table:
    cells = _topic_source_cells(store, sel)
    title = "Top sources per topic"
    return _per_topic(store, sel, cells, "topic-sources", title, SOURCE, per_topic, keep="source != ''")


def _per_topic(
    store: Store,
    sel: Selection,
    cells: Cells,
    name: str,
    title: str,
    column: Column,
    per_topic: int,
    keep: str = "1",
) -> Table:
    """The ``per_topic`` biggest rows of each topic of a topic-by-``column`` table."""
    top = _cells(store, cells, sel, ["views"], 10_000, keep=keep, per_first=per_topic, rolled=True)
    top.sort(key=lambda row: (row[0], -row[2]))
    return Table(name, title, [TOPIC, column, VIEWS, VISITORS], top)


NOT_FILTERED = "Not split by filters."


def co_interest(store: Store, sel: Selection, limit: int = 20) -> Table:
    """Pairs of topics read by the same visitor on the same day: of the visitors (per day) interested in
    the first, the share also interested in the second. A pair counts on a day when both topics' cells
    count, and those who read one but not the other are none or k or more, either way round."""
    table = Table(
        "co-interest",
        "Co-interest: visitors interested in one topic were also interested in another (same day)",
        [
            TOPIC,
            Column("also", "Also interested in", numeric=False, filter="topic"),
            Column("both", "Visitors (per day) with both"),
            # Of the first topic's visitors on the days the pair counted (not the whole range: a pair counts
            # only on days it has enough visitors; found by a helper, the column did not say so).
            Column("share", "Share of the first topic's visitors on those days"),
        ],
    )
    if sel.filters.active():
        table.note = NOT_FILTERED
        return table
    grid_sql, params = source(store, _co_interest_grid(store, sel), sel)
    rows = store.query(
        f"""
        SELECT a, b, sum(visitors) AS both, sum(views) AS of_a FROM ({grid_sql})
        GROUP BY a, b
        ORDER BY both DESC, both / of_a DESC, a, b
        LIMIT {int(limit)}
        """,
        params,
    )
    table.rows = [(a, b, int(both), round(both / of_a, 3) if of_a else None) for a, b, both, of_a in rows]
    return table


def _co_interest_grid(store: Store, sel: Selection) -> Grid:
    """Per day, each pair of topics with the visitors who read both (``visitors``) and those who read the
    first (``views``), for the pairs that count that day: both topics' cells count, and those who read one
    but not the other are none or k or more, either way round."""
    per_visitor = raw_cells(
        store, sel, {"visitor": "v.visitor_id"}, metrics={"topics": "groupUniqArrayArray(v.topics)"}
    )
    singles = _topic_cells(store, sel)
    counted = f"SELECT day, topic, visitors FROM ({_gated(singles)}) WHERE ok"
    live = f"""
        SELECT p.a AS a, p.b AS b, p.day AS day, s.visitors AS views, p.visitors AS visitors
        FROM (
            SELECT day, a, b, count() AS visitors
            FROM (SELECT day, topics FROM ({per_visitor.inner}))
            ARRAY JOIN topics AS a
            ARRAY JOIN topics AS b
            WHERE a != b
            GROUP BY day, a, b
        ) AS p
        INNER JOIN ({counted}) AS s ON s.day = p.day AND s.topic = p.a
        INNER JOIN ({counted}) AS t ON t.day = p.day AND t.topic = p.b
        WHERE p.visitors >= {{k:UInt32}}
          AND (s.visitors = p.visitors OR s.visitors - p.visitors >= {{k:UInt32}})
          AND (t.visitors = p.visitors OR t.visitors - p.visitors >= {{k:UInt32}})
    """
    params = {**per_visitor.params, **singles.params}
    return Grid(live, params, ("a", "b"), ("views",), True, _key(live))


def pages(store: Store, sel: Selection) -> Table:
    rows = _cells(store, _page_cells(store, sel), sel, ["views"], 100, rolled=True)
    return Table("pages", "Top pages", [PAGE, VIEWS, VISITORS], rows)


def entry_pages(store: Store, sel: Selection) -> Table:
    rows = _cells(store, _entry_cells(store, sel), sel, ["visits"], 50)
    return Table("entry-pages", "Entry pages", [PAGE, VISITS, VISITORS], rows)


def exit_pages(store: Store, sel: Selection) -> Table:
    """The last page of each visit (a visit is a visitor id and its start)."""
    table = Table("exit-pages", "Exit pages", [PAGE, Column("visits", "Exits"), VISITORS])
    if sel.filters.active():
        table.note = NOT_FILTERED
        return table
    table.rows = _cells(store, _exit_cells(store, sel), sel, ["visits"], 50)
    return table


def campaigns(store: Store, sel: Selection) -> Table:
    keep = "(source != '' OR campaign != '')"
    rows = _cells(store, _campaign_cells(store, sel), sel, ["views"], 50, keep=keep)
    columns = [
        Column("source", "utm_source", numeric=False),
        Column("medium", "utm_medium", numeric=False),
        Column("campaign", "utm_campaign", numeric=False),
        VIEWS,
        VISITORS,
    ]
    return Table("campaigns", "Campaigns (UTM)", columns, rows)


def realtime(store: Store, site: str, now: datetime, min_visitors: int) -> int | None:
    """Distinct visitors in the last 30 minutes, rounded down to a multiple of ``min_visitors`` (one more
    visitor must not show from one look to the next), or None when fewer than ``min_visitors``."""
    [(count,)] = store.query(
        f"""
        SELECT uniqExact(visitor_id) FROM {store.table("page_views")}
        WHERE site = {{site:String}} AND ts >= {{since:DateTime64(3, 'UTC')}}
        """,
        {"site": site, "since": now - timedelta(minutes=REALTIME_MINUTES)},
    )
    return int(count) // min_visitors * min_visitors if count >= min_visitors else None


def sites(store: Store) -> list[str]:
    """The sites in the store: those with published days (every site with data, once the publisher has
    been at it), and those with statistics of the last month (one just begun). Not every statistics row:
    that is millions of rows read on every view."""
    return [
        row[0]
        for row in store.query(
            f"""
            SELECT DISTINCT site FROM (
                SELECT site FROM {store.table("publications")}
                UNION ALL
                SELECT site FROM {store.table("daily_stats")} WHERE day >= today() - 31
            )
            ORDER BY site
            """
        )
    ]


def topic_report(store: Store, site: str, first: date, last: date, min_visitors: int) -> Table:
    """The topics table for a site and days (a shortcut for scripts and tests)."""
    return topics(store, Selection(site, first, last, ZoneInfo(store.settings.timezone), min_visitors))


# -- every kind of table, for publication -----------------------------------------------------------------


def _page_cells(store: Store, sel: Selection) -> Cells:
    return raw_cells(store, sel, {"path": "v.path"})


def _entry_cells(store: Store, sel: Selection) -> Cells:
    return raw_cells(store, sel, {"path": "v.path"}, {"visits": "count()"}, where=["v.entry"])


def _campaign_cells(store: Store, sel: Selection) -> Cells:
    return raw_cells(
        store, sel, {"source": "v.utm_source", "medium": "v.utm_medium", "campaign": "v.utm_campaign"}
    )


def _topic_page_cells(store: Store, sel: Selection) -> Cells:
    return raw_cells(store, sel, {"topic": "topic", "path": "v.path"}, array_join=RAW_TOPICS)


def _topic_cells(store: Store, sel: Selection) -> Cells:
    return raw_cells(store, sel, {"topic": "topic"}, array_join=RAW_TOPICS)


def _exit_cells(store: Store, sel: Selection) -> Cells:
    """The last page of each visit (a visit is a visitor id and its start), as cells of visits."""
    visits = raw_cells(
        store, sel, {"visitor": "v.visitor_id", "visit": "v.visit_start"}, {"path": "argMax(v.path, v.ts)"}
    )
    exits = f"""
        SELECT path, day, count() AS visits, uniqExact(visitor) AS visitors, uniqExactState(visitor) AS state
        FROM ({visits.inner})
        GROUP BY path, day
    """
    return Cells(exits, visits.params, ("path",), ("path",), "1", "uniqExact", ("visits",), raw=True)


def _stats_of(*by: str) -> Callable[[Store, Selection], Cells]:
    return lambda store, sel: stats_cells(store, sel, by)


# Tables a filter splits (each filter combination is a grid of its own), and tables it does not.
_topic_source_cells = _stats_of("topic", "source")

# The wide tables (a row per page, or per topic and source, each day): their whole months are rolled up.
ROLLED: tuple[Callable[[Store, Selection], Cells], ...] = (
    _page_cells,
    _topic_page_cells,
    _topic_source_cells,
)
_FILTERED: tuple[Callable[[Store, Selection], Cells], ...] = (
    *(_stats_of(*by) for by in [(), *((d,) for d in DIMENSIONS), *(("topic", d) for d in DIMENSIONS[1:])]),
    _page_cells,
    _entry_cells,
    _campaign_cells,
    _topic_page_cells,
)
_UNFILTERED: tuple[Callable[[Store, Selection], Grid], ...] = (
    lambda store, sel: _exit_cells(store, sel).grid(),
    _co_interest_grid,
)


def filter_group(filters: Filters) -> str:
    """The kind of filter a selection has (its dimensions, not their values): ``""`` for none,
    ``"country"``, ``"topic+device"``, ... Each kind of filter needs grids of its own."""
    return "+".join(name for name, _ in filters.active())


def filter_groups() -> list[str]:
    """Every kind of filter a view allows."""
    return [
        "+".join(names)
        for size in range(MAX_FILTERS + 1)
        for names in itertools.combinations(DIMENSIONS, size)
    ]


def grids(store: Store, sel: Selection, group: str = "", rolled: bool = False) -> list[Grid]:
    """The grids the views ask for under filters of kind ``group`` (``filter_group``), for the selection's
    days: every table that filters split, and without filters also those they do not (``rolled``: only
    those whose whole months are read rolled up)."""
    names = [name for name in group.split("+") if name]
    filtered = replace(sel, filters=Filters(**dict.fromkeys(names, "")))
    found: dict[str, Grid] = {}
    if rolled:
        return list({grid.key: grid for grid in (build(store, filtered).grid() for build in ROLLED)}.values())
    for build in _FILTERED:
        grid = build(store, filtered).grid()
        found.setdefault(grid.key, grid)
    if not names:
        for unfiltered in _UNFILTERED:
            grid = unfiltered(store, filtered)
            found.setdefault(grid.key, grid)
    return list(found.values())
