"""What each dashboard view shows: the selection read from the URL, the reports it runs (in one store
thread), the links that keep the selection, and the CSV of any of its tables."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from . import reports, spreadsheet
from .charts import line_chart, per
from .publish import with_published
from .reports import (
    DIMENSIONS,
    MAX_FILTER_LENGTH,
    MAX_FILTERS,
    MAX_RANGE_DAYS,
    Filters,
    Selection,
    Series,
    Table,
)
from .store import Store

PRESETS = {
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "month": "This month",
    "last-month": "Last month",
    "12m": "Last 12 months",
}
DEFAULT_PRESET = "30d"
METRICS = {"visitors": "Visitors", "visits": "Visits", "views": "Page views"}


def _preset_range(preset: str, today: date) -> tuple[date, date]:
    """Whole days up to yesterday (see ``parse``)."""
    yesterday = today - timedelta(days=1)
    if preset == "month":  # this month so far (on the 1st: the last month)
        return yesterday.replace(day=1), yesterday
    if preset == "last-month":
        last = today.replace(day=1) - timedelta(days=1)
        return last.replace(day=1), last
    if preset == "12m":
        return yesterday - timedelta(days=364), yesterday
    return yesterday - timedelta(days=int(preset[:-1]) - 1), yesterday


@dataclass(frozen=True, slots=True)
class Request:
    """The view's parameters, as read from the query string (only the ones the dashboard knows)."""

    selection: Selection
    preset: str | None  # None for a custom range
    metric: str
    params: dict[str, str]

    def link(self, view: str, changes: Mapping[str, str | None] | None = None) -> str:
        """The URL of ``view`` with this selection, some parameters changed (None removes one)."""
        params = {**self.params, **(changes or {})}
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return view + ("?" + query if query else "")

    def preset_link(self, view: str, preset: str) -> str:
        return self.link(view, {"preset": preset, "from": None, "to": None})

    def hidden(self) -> list[tuple[str, str]]:
        """The parameters a custom-range form must carry along (filters, site, metric)."""
        return [(k, v) for k, v in self.params.items() if k not in ("preset", "from", "to")]


def parse(query: Mapping[str, str], today: date, site: str, zone: ZoneInfo, min_visitors: int) -> Request:
    """The selection a view's URL asks for; ValueError with a message a person can act on when it is not
    one the dashboard can show."""
    params: dict[str, str] = {}
    preset = query.get("preset") or None
    if query.get("from") or query.get("to"):
        # Today is left out until it is over: its numbers grow as single visitors arrive, and two looks a
        # minute apart would show what one visitor did.
        last = min(_parse_date(query.get("to")) or today, today - timedelta(days=1))
        first = _parse_date(query.get("from")) or last - timedelta(days=29)
        params.update({"from": first.isoformat(), "to": last.isoformat()})
        preset = None
    else:
        preset = preset if preset in PRESETS else DEFAULT_PRESET
        first, last = _preset_range(preset, today)
        params["preset"] = preset
    if first > last:
        raise ValueError("The start date is after the end date (reports end yesterday: today is not over).")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ValueError(f"Choose a range of at most {MAX_RANGE_DAYS} days.")
    values: dict[str, str] = {}
    for name in DIMENSIONS:
        value = query.get(name)
        if value is not None:
            if len(value) > MAX_FILTER_LENGTH:
                raise ValueError(f"The {name} filter is too long.")
            values[name] = value
    if len(values) > MAX_FILTERS:
        raise ValueError(f"Choose at most {MAX_FILTERS} filters at a time.")
    params.update(values)
    chosen_site = query.get("site") or site
    if len(chosen_site) > MAX_FILTER_LENGTH:
        raise ValueError("The site name is too long.")
    if chosen_site != site:
        params["site"] = chosen_site
    metric = query.get("metric") or "visitors"
    if metric not in METRICS or (metric == "visits" and values):
        metric = "visitors"  # (visits are not split by filters: see overview.html)
    if metric != "visitors":
        params["metric"] = metric
    selection = Selection(chosen_site, first, last, zone, min_visitors, Filters(**values))
    return Request(selection, preset, metric, params)


def _parse_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        parsed = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        parsed = None
    if parsed is None or not 2000 <= parsed.year <= 2999:
        # (As typed, what can be shown of it: not Python's quoting, found by a helper.)
        shown = "".join(char if char.isprintable() else "?" for char in value[:20])
        raise ValueError(f"“{shown}” is not a date from 2000 to 2999 in the form YYYY-MM-DD.")
    return parsed


# -- the views ------------------------------------------------------------------------------------------


def overview(store: Store, request: Request, now: datetime) -> dict[str, Any]:
    sel = with_published(store, request.selection)
    summary = reports.overview(store, sel)
    topics = reports.topics(store, sel)
    topics.rows = topics.rows[:10]
    topics.title = "Top topics"
    tables = {
        t.name: t
        for t in (
            topics,
            reports.sources(store, sel),
            reports.countries(store, sel),
            reports.devices(store, sel),
        )
    }
    metric = request.metric
    chosen = Series(METRICS[metric], summary.series[metric])
    point = per(sel.day_list())  # what one point of the chart is: a day, or a week
    chart = line_chart(sel.day_list(), [chosen], f"{METRICS[metric]} per {point}")
    return {
        "summary": summary,
        "tables": tables,
        "chart": chart,
        "per": point,
        "series": [chosen],
        "realtime": reports.realtime(store, sel.site, now, sel.min_visitors),
        "sites": reports.sites(store),
    }


def topics(store: Store, request: Request, now: datetime) -> dict[str, Any]:
    sel = with_published(store, request.selection)
    ranking = reports.topics(store, sel)
    top = [row[0] for row in ranking.rows[:5]]
    series = reports.topic_series(store, sel, top)
    tables = {
        t.name: t
        for t in (
            ranking,
            reports.topic_by(store, sel, reports.COUNTRY),
            reports.topic_by(store, sel, reports.DEVICE),
            reports.topic_pages(store, sel),
            reports.topic_sources(store, sel),
            reports.co_interest(store, sel),
        )
    }
    chart = line_chart(
        sel.day_list(), series, f"Page views per {per(sel.day_list())} of the five biggest topics"
    )
    return {
        "tables": tables,
        "rising": reports.rising(ranking),
        "chart": chart,
        "topic_series": series,
        "sites": reports.sites(store),
    }


def pages(store: Store, request: Request, now: datetime) -> dict[str, Any]:
    sel = with_published(store, request.selection)
    tables = {
        t.name: t
        for t in (
            reports.pages(store, sel),
            reports.entry_pages(store, sel),
            reports.exit_pages(store, sel),
            reports.campaigns(store, sel),
        )
    }
    return {"tables": tables, "sites": reports.sites(store)}


VIEWS: dict[str, Callable[[Store, Request, datetime], dict[str, Any]]] = {
    "overview": overview,
    "topics": topics,
    "pages": pages,
}


# -- CSV ------------------------------------------------------------------------------------------------


_EMPTY = {"topic": "(no topic)", "source": "(direct)", "country": "(unknown)", "device": "(unknown)"}


def label(dimension: str, value: Any) -> str:
    """How a segment's value reads in a table and its CSV: an empty topic is "(no topic)", and so on."""
    return _EMPTY.get(dimension, "(none)") if value == "" else str(value)


def csv_text(table: Table) -> str:
    """The table as CSV: the same rows and columns the page shows. Text that a spreadsheet would take for a
    formula (paths and campaign names come from visitors) gets a leading apostrophe."""
    out = io.StringIO()
    rows = spreadsheet.writer(out)
    rows.writerow([column.title for column in table.columns])
    for row in table.rows:
        rows.writerow(
            [
                spreadsheet.cell(value if c.numeric else label(c.filter or c.key, value))
                for c, value in zip(table.columns, row, strict=True)
            ]
        )
    return out.getvalue()
