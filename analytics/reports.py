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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .aggregates import ALL_TOPICS, source_expression
from .ledger import Method
from .store import Store

NO_TOPIC = ""
DIMENSIONS = ("topic", "country", "device", "source")
# Filters combine at most this many at a time: each one narrows the cells, and narrow cells are where
# people could be singled out by comparing a filtered report with an unfiltered one.
MAX_FILTERS = 2
MAX_FILTER_LENGTH = 100
REALTIME_MINUTES = 30


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
    """What a report is about: a site, whole days from ``first`` to ``last``, filters, and the threshold."""

    site: str
    first: date
    last: date
    zone: ZoneInfo
    min_visitors: int
    filters: Filters = Filters()

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
    hidden: int = 0  # segments none of whose days had enough visitors
    note: str = ""


@dataclass(frozen=True, slots=True)
class Series:
    """Values per day (0 for a day whose cell is below the threshold)."""

    name: str
    values: list[int]


# -- the cell rule ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cells:
    """Where a table's cells come from: ``inner`` gives one row per ``segments`` and day, with the metrics,
    ``visitors`` and ``state`` (a ``merge`` distinct-count state of the visitors). ``segments`` are the
    table's own (``shown``) followed by the dimensions of its filters: a filter is gated as a segment and
    applied after the gate (``keep``), so a filtered table is exactly a slice of a bigger table whose every
    cell passed the rule."""

    inner: str
    params: dict[str, Any]
    segments: tuple[str, ...]
    shown: tuple[str, ...]
    keep: str
    merge: str


# How many of the smallest counted cells of one parent may be left out to make its remainder big enough,
# before all of them are. (One is always enough when segments do not overlap; topics do.)
MAX_LEFT_OUT = 3


def _gated(cells: Cells) -> str:
    """The cells with an ``ok`` column: whether the cell counts.

    A cell counts with ``min_visitors`` (``k``) or more visitors. That alone is not enough: what a table does
    not show is a remainder (the total one level up minus the rows shown), and a remainder of 1 to k-1
    visitors would be as good as shown. So for every parent of a cell (its day, and its day with every
    proper subset of its segments: for topic by country, the day, the day and topic, the day and country),
    both the parent's visitors who are in no counted cell, and the visitors of its cells that do not count,
    must number none or at least k. If they do not, the smallest counted cells under that parent are left
    out too, up to ``MAX_LEFT_OUT`` of them (one is enough unless segments overlap, as topics do); if that is
    still not enough, nothing under that parent counts. Each parent is worked out from the cells alone, so
    the query grows with the number of parents, not exponentially."""
    segments, merge = cells.segments, cells.merge
    if not segments:  # a total: nothing under it is shown beside it
        return f"SELECT *, visitors >= {{k:UInt32}} AS ok FROM ({cells.inner})"
    parents = [
        ["day", *subset] for size in range(len(segments)) for subset in itertools.combinations(segments, size)
    ]
    seg = ", ".join(segments)
    ranks = ",\n".join(
        f"row_number() OVER (PARTITION BY {', '.join(parent)}, visitors >= {{k:UInt32}} "
        f"ORDER BY visitors, {seg}) AS rank_{index}"
        for index, parent in enumerate(parents)
    )
    ranked = f"SELECT *, {ranks} FROM ({cells.inner})"
    joins, guards = [], []
    for index, parent in enumerate(parents):
        by = ", ".join(parent)
        rank = f"rank_{index}"
        counted = f"visitors >= {{k:UInt32}} AND {rank} > N"
        measures = ",\n".join(
            f"toInt64({merge}Merge(state)) - toInt64({merge}MergeIf(state, {counted.replace(' N', f' {n}')}))"
            f" AS out_{n}, toInt64({merge}MergeIf(state, NOT ({counted.replace(' N', f' {n}')}))) AS hid_{n}"
            for n in range(MAX_LEFT_OUT + 1)
        )
        joins.append(
            # (The parent's columns renamed: with the same names, c.* would come out qualified.)
            f"LEFT JOIN (SELECT {', '.join(f'{column} AS k_{column}' for column in parent)}, {measures} "
            f"FROM ({ranked}) GROUP BY {by}) AS p{index} "
            + "ON "
            + " AND ".join(f"c.{column} = p{index}.k_{column}" for column in parent)
        )

        def fine(n: int, i: int = index) -> str:
            return (
                f"(p{i}.out_{n} = 0 OR p{i}.out_{n} >= {{k:UInt32}}) "
                f"AND (p{i}.hid_{n} = 0 OR p{i}.hid_{n} >= {{k:UInt32}})"
            )

        steps = "".join(f"{fine(n)}, c.{rank} > {n}, " for n in range(MAX_LEFT_OUT + 1))
        guards.append(f"multiIf({steps}0)")
    return f"""
        SELECT c.*, c.visitors >= {{k:UInt32}} AND {" AND ".join(guards)} AS ok
        FROM ({ranked}) AS c
        {" ".join(joins)}
    """


def _cells(
    store: Store,
    cells: Cells,
    metrics: Sequence[str],
    k: int,
    limit: int = 1000,
    keep: str = "1",
) -> tuple[list[tuple[Any, ...]], int]:
    """Sum the cells that count (``_gated``) per shown segment. Returns the segments that have any such
    cell (segment values, then metric sums, then visitors), biggest first, and how many segments had none.
    ``keep`` (with the filters') leaves segments out of the table only after the gate, which must see them
    all: dropping the visitors without a referrer before it would let the total minus the rest give them
    away."""
    seg = ", ".join(cells.shown)
    sums = ", ".join(f"sumIf({m}, ok) AS t_{m}" for m in metrics)
    rows = store.query(
        f"""
        SELECT {seg}, {", ".join(f"t_{m}" for m in metrics)}, t_visitors, countIf(shown = 0) OVER () AS hidden
        FROM (
            SELECT {seg}, {sums}, sumIf(visitors, ok) AS t_visitors, countIf(ok) AS shown
            FROM ({_gated(cells)})
            WHERE ({cells.keep}) AND ({keep})
            GROUP BY {seg}
        )
        ORDER BY shown = 0, t_{metrics[0]} DESC, {seg}
        LIMIT {int(limit)}
        """,
        {**cells.params, "k": k},
    )
    hidden = int(rows[0][-1]) if rows else 0
    shown = [tuple(row[:-1]) for row in rows if row[len(cells.shown) + len(metrics)] > 0]
    return shown, hidden


def _series(
    store: Store, cells: Cells, metrics: Sequence[str], sel: Selection
) -> dict[tuple[Any, ...], dict[str, list[int]]]:
    """Per shown segment, each metric per day of the selection (0 where the cell does not count)."""
    seg = ", ".join(cells.shown) + ", " if cells.shown else ""
    rows = store.query(
        f"SELECT {seg}day, {', '.join(metrics)} FROM ({_gated(cells)}) WHERE ok AND ({cells.keep})",
        {**cells.params, "k": sel.min_visitors},
    )
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


# -- where the cells come from ---------------------------------------------------------------------------


def _keep(sel: Selection, column: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The filters as a condition on the gated cells (``column`` names each dimension's column there)."""
    conditions, params = [], {}
    for name, value in sel.filters.active():
        conditions.append(f"{column[name]} = {{f_{name}:String}}")
        params[f"f_{name}"] = value
    return " AND ".join(conditions) or "1", params


def _stats(store: Store, sel: Selection, by: Sequence[str]) -> Cells:
    """Cells from the daily statistics: one row per ``by`` (and filter dimension) and day, with views,
    visits, returning visits and visitors (distinct on that day)."""
    dims = [*by, *(name for name, _ in sel.filters.active() if name not in by)]
    params: dict[str, Any] = {"site": sel.site, "first": sel.first, "last": sel.last, "all": ALL_TOPICS}
    where = ["site = {site:String}", "day >= {first:Date}", "day <= {last:Date}"]
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
    return Cells(inner, {**params, **filter_params}, tuple(dims), tuple(by), keep, "uniq")


# Topics as raw rows give them: a page without one counts as "" (no topic), as in the daily statistics.
RAW_TOPICS = "ARRAY JOIN if(empty(v.topics), [''], v.topics) AS topic"
_RAW_FILTERS = {"country": "v.country", "device": "v.device", "source": source_expression("v")}


def _raw(
    store: Store,
    sel: Selection,
    by: dict[str, str],
    metrics: dict[str, str] | None = None,
    where: Sequence[str] = (),
    array_join: str = "",
) -> Cells:
    """Cells from raw page views: one row per ``by`` (alias: expression), filter dimension and day. Only
    days wholly inside raw retention (the oldest day loses rows while it is looked at, and the difference
    between two looks would be one visitor's), and no day on which an erased visitor had page views."""
    params: dict[str, Any] = {
        "site": sel.site,
        "start": sel.start(),
        "end": sel.end(),
        "raw_days": store.settings.raw_retention_days - 1,
    }
    day = f"toDate(v.ts, '{sel.zone.key}')"
    conditions = [
        "v.site = {site:String}",
        "v.ts >= {start:DateTime64(3, 'UTC')}",
        "v.ts < {end:DateTime64(3, 'UTC')}",
        f"{day} > toDate(now(), '{sel.zone.key}') - {{raw_days:UInt32}}",
        # Nor the days of an erased visitor: the statistics still count them (see migrations._erased_days).
        f"{day} NOT IN (SELECT day FROM {store.table('erased_days')} WHERE site = {{site:String}})",
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
    return Cells(inner, {**params, **filter_params}, tuple(columns), tuple(by), keep, "uniqExact")


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
    series = _day_series(store, sel)
    totals = _sum(series)
    previous = _sum(_day_series(store, sel.previous()))
    engaged = previous_engaged = None
    if not sel.filters.active():
        engaged, previous_engaged = _engagement(store, sel), _engagement(store, sel.previous())
    rates, decisions = _consent_rates(store, sel)
    return Overview(totals, previous, series, engaged, previous_engaged, rates, decisions)


def _day_series(store: Store, sel: Selection) -> dict[str, list[int]]:
    """Views, visitors, visits and returning visits per day, of the days that count. Visits and returning
    visits count people (those who began a visit; those who came back): a day's figure counts only when it
    is k or more itself."""
    metrics = ("views", "visitors", "visits", "returning")
    series = _series(store, _stats(store, sel, ()), metrics, sel).get(
        (), {m: [0] * sel.days for m in metrics}
    )
    for people in ("visits", "returning"):
        series[people] = [n if n >= sel.min_visitors else 0 for n in series[people]]
    return series


def _sum(series: dict[str, list[int]]) -> Totals:
    return Totals(
        sum(series["visitors"]), sum(series["visits"]), sum(series["views"]), sum(series["returning"])
    )


def _engagement(store: Store, sel: Selection) -> float | None:
    """Mean seconds a page stayed visible, over the days with enough engaged visitors."""
    [(visible, pages)] = store.query(
        f"""
        SELECT sumIf(visible, visitors >= {{k:UInt32}}), sumIf(pages, visitors >= {{k:UInt32}})
        FROM (
            SELECT toDate(ts, '{sel.zone.key}') AS day, sum(visible_ms) AS visible, count() AS pages,
                   uniqExact(visitor_id) AS visitors
            FROM {store.table("engagement")}
            WHERE site = {{site:String}} AND ts >= {{start:DateTime64(3, 'UTC')}}
              AND ts < {{end:DateTime64(3, 'UTC')}}
            GROUP BY day
        )
        """,
        {"site": sel.site, "start": sel.start(), "end": sel.end(), "k": sel.min_visitors},
    )
    return visible / pages / 1000 if pages else None


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
    cells = _stats(store, sel, [c.key for c in by])
    rows, hidden = _cells(store, cells, [c.key for c in measures], sel.min_visitors, limit)
    return Table(name, title, [*by, *measures, VISITORS], rows, hidden)


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


def topics(store: Store, sel: Selection) -> Table:
    """Topics ranked by page views, with the change against the previous period."""
    table = _table_from_stats(store, sel, "topics", "Topics", [TOPIC])
    before = {row[0]: row[1] for row in _table_from_stats(store, sel.previous(), "", "", [TOPIC], 1000).rows}
    table.columns.append(Column("change", "Change in page views"))
    table.rows = [(*row, _change(row[1], before.get(row[0], 0))) for row in table.rows]
    return table


def _change(now: int, before: int) -> float | None:
    """The relative change, or None when there was nothing (shown) to compare with."""
    return round((now - before) / before, 3) if before else None


def rising(table: Table, count: int = 5) -> list[tuple[str, int, float | None]]:
    """The topics that gained the most page views against the previous period (new ones first)."""
    growing = [(row[0], row[1], row[-1]) for row in table.rows if row[-1] is None or row[-1] > 0]
    return sorted(growing, key=lambda r: (r[2] is not None, -(r[2] or 0), -r[1]))[:count]


def topic_series(store: Store, sel: Selection, topics: Sequence[str]) -> list[Series]:
    per = _series(store, _stats(store, sel, ["topic"]), ["views"], sel)
    return [Series(topic, per[(topic,)]["views"] if (topic,) in per else [0] * sel.days) for topic in topics]


def topic_by(store: Store, sel: Selection, column: Column) -> Table:
    name = f"topic-{column.key}"
    return _table_from_stats(store, sel, name, f"Topic by {column.title.lower()}", [TOPIC, column], 200)


def topic_pages(store: Store, sel: Selection, per_topic: int = 3) -> Table:
    """The most viewed pages of each topic."""
    cells = _raw(store, sel, {"topic": "topic", "path": "v.path"}, array_join=RAW_TOPICS)
    return _per_topic(store, sel, cells, "topic-pages", "Top pages per topic", PAGE, per_topic)


def topic_sources(store: Store, sel: Selection, per_topic: int = 3) -> Table:
    cells = _stats(store, sel, ["topic", "source"])
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
    rows, hidden = _cells(store, cells, ["views"], sel.min_visitors, 2000, keep=keep)
    counted: dict[Any, int] = defaultdict(int)
    top = []
    for row in rows:  # biggest first already
        if counted[row[0]] < per_topic:
            counted[row[0]] += 1
            top.append(row)
    top.sort(key=lambda row: (row[0], -row[2]))
    return Table(name, title, [TOPIC, column, VIEWS, VISITORS], top, hidden)


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
            Column("share", "Share of the first topic's visitors"),
        ],
    )
    if sel.filters.active():
        table.note = NOT_FILTERED
        return table
    per_visitor = _raw(
        store, sel, {"visitor": "v.visitor_id"}, metrics={"topics": "groupUniqArrayArray(v.topics)"}
    )
    singles = _raw(store, sel, {"topic": "topic"}, array_join=RAW_TOPICS)
    counted = f"SELECT day, topic, visitors FROM ({_gated(singles)}) WHERE ok"
    rows = store.query(
        f"""
        SELECT p.a, p.b, sum(p.visitors) AS both, sum(s.visitors) AS of_a
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
        GROUP BY p.a, p.b
        ORDER BY both / of_a DESC, both DESC, p.a, p.b
        LIMIT {int(limit)}
        """,
        {**per_visitor.params, **singles.params, "k": sel.min_visitors},
    )
    table.rows = [(a, b, int(both), round(both / of_a, 3) if of_a else None) for a, b, both, of_a in rows]
    return table


def pages(store: Store, sel: Selection) -> Table:
    rows, hidden = _cells(store, _raw(store, sel, {"path": "v.path"}), ["views"], sel.min_visitors, 100)
    return Table("pages", "Top pages", [PAGE, VIEWS, VISITORS], rows, hidden)


def entry_pages(store: Store, sel: Selection) -> Table:
    cells = _raw(store, sel, {"path": "v.path"}, {"visits": "count()"}, where=["v.entry"])
    rows, hidden = _cells(store, cells, ["visits"], sel.min_visitors, 50)
    return Table("entry-pages", "Entry pages", [PAGE, VISITS, VISITORS], rows, hidden)


def exit_pages(store: Store, sel: Selection) -> Table:
    """The last page of each visit (a visit is a visitor id and its start)."""
    table = Table("exit-pages", "Exit pages", [PAGE, Column("visits", "Exits"), VISITORS])
    if sel.filters.active():
        table.note = NOT_FILTERED
        return table
    visits = _raw(
        store, sel, {"visitor": "v.visitor_id", "visit": "v.visit_start"}, {"path": "argMax(v.path, v.ts)"}
    )
    exits = f"""
        SELECT path, day, count() AS visits, uniqExact(visitor) AS visitors, uniqExactState(visitor) AS state
        FROM ({visits.inner})
        GROUP BY path, day
    """
    cells = Cells(exits, visits.params, ("path",), ("path",), "1", "uniqExact")
    table.rows, table.hidden = _cells(store, cells, ["visits"], sel.min_visitors, 50)
    return table


def campaigns(store: Store, sel: Selection) -> Table:
    cells = _raw(
        store, sel, {"source": "v.utm_source", "medium": "v.utm_medium", "campaign": "v.utm_campaign"}
    )
    keep = "(source != '' OR campaign != '')"
    rows, hidden = _cells(store, cells, ["views"], sel.min_visitors, 50, keep=keep)
    columns = [
        Column("source", "utm_source", numeric=False),
        Column("medium", "utm_medium", numeric=False),
        Column("campaign", "utm_campaign", numeric=False),
        VIEWS,
        VISITORS,
    ]
    return Table("campaigns", "Campaigns (UTM)", columns, rows, hidden)


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
    return [
        row[0] for row in store.query(f"SELECT DISTINCT site FROM {store.table('daily_stats')} ORDER BY site")
    ]


def topic_report(store: Store, site: str, first: date, last: date, min_visitors: int) -> Table:
    """The topics table for a site and days (a shortcut for scripts and tests)."""
    return topics(store, Selection(site, first, last, ZoneInfo(store.settings.timezone), min_visitors))
