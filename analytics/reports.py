"""Dashboard queries. Every segment reported has at least ``min_visitors`` distinct visitors (k-anonymity);
smaller segments are suppressed and only their number is reported.

Counts that need no raw rows (page views, visits) come from the anonymous daily statistics
(``koekje.analytics.aggregates``); distinct visitors over a period from the raw page views, while they
exist. For a period whose raw rows have expired, the busiest day's visitors are what is known for sure (a
lower bound): enough to decide whether a segment may be shown, never more than the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .aggregates import ALL_TOPICS
from .store import Store

NO_TOPIC = ""


@dataclass(frozen=True, slots=True)
class TopicRow:
    topic: str  # NO_TOPIC for pages without a topic
    views: int
    visitors: int
    visits: int = 0


@dataclass(frozen=True, slots=True)
class TopicReport:
    start: datetime
    end: datetime
    rows: list[TopicRow]
    suppressed: int  # segments hidden for having fewer than min_visitors visitors
    min_visitors: int


def topic_report(store: Store, site: str, first: date, last: date, min_visitors: int) -> TopicReport:
    """Page views, visits and distinct visitors per topic for the days ``first`` to ``last`` (inclusive)
    in the site's time zone."""
    zone = ZoneInfo(store.settings.timezone)
    start = datetime.combine(first, time(), zone)
    end = datetime.combine(last + timedelta(days=1), time(), zone)
    counted = store.query(
        f"""
        SELECT topic, sum(views), sum(visits), max(day_visitors)
        FROM (
            SELECT topic, day, sum(page_views) AS views, sum(visits) AS visits,
                   uniqMerge(visitors) AS day_visitors
            FROM {store.table("daily_stats")}
            WHERE site = {{site:String}} AND day >= {{first:Date}} AND day <= {{last:Date}}
              AND topic != {{all:String}}
            GROUP BY topic, day
        )
        GROUP BY topic
        """,
        {"site": site, "first": first, "last": last, "all": ALL_TOPICS},
    )
    distinct = dict(
        store.query(
            f"""
            SELECT topic, uniqExact(visitor_id)
            FROM {store.table("page_views")}
            ARRAY JOIN if(empty(topics), [''], topics) AS topic
            WHERE site = {{site:String}}
              AND ts >= {{start:DateTime64(3, 'UTC')}} AND ts < {{end:DateTime64(3, 'UTC')}}
            GROUP BY topic
            """,
            {"site": site, "start": start, "end": end},
        )
    )
    rows = sorted(
        (
            TopicRow(topic, int(views), max(int(distinct.get(topic, 0)), int(busiest)), int(visits))
            for topic, views, visits, busiest in counted
        ),
        key=lambda row: (-row.views, row.topic),
    )
    shown = [row for row in rows if row.visitors >= min_visitors]
    return TopicReport(start, end, shown, suppressed=len(rows) - len(shown), min_visitors=min_visitors)
