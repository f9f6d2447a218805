"""Dashboard queries. Every segment reported has at least ``min_visitors`` distinct visitors (k-anonymity);
smaller segments are suppressed and only their number is reported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .store import Store

NO_TOPIC = ""


@dataclass(frozen=True, slots=True)
class TopicRow:
    topic: str  # NO_TOPIC for pages without a topic
    views: int
    visitors: int


@dataclass(frozen=True, slots=True)
class TopicReport:
    start: datetime
    end: datetime
    rows: list[TopicRow]
    suppressed: int  # segments hidden for having fewer than min_visitors visitors
    min_visitors: int


def topic_report(store: Store, site: str, start: datetime, end: datetime, min_visitors: int) -> TopicReport:
    """Page views and distinct visitors per topic for ``start <= ts < end`` (aware datetimes)."""
    rows = store.query(
        f"""
        SELECT topic, count() AS views, uniqExact(visitor_id) AS visitors
        FROM {store.table("page_views")}
        ARRAY JOIN if(empty(topics), [''], topics) AS topic
        WHERE site = {{site:String}}
          AND ts >= {{start:DateTime64(3, 'UTC')}} AND ts < {{end:DateTime64(3, 'UTC')}}
        GROUP BY topic
        ORDER BY views DESC, topic
        """,
        {"site": site, "start": start, "end": end},
    )
    shown = [TopicRow(topic, views, visitors) for topic, views, visitors in rows if visitors >= min_visitors]
    return TopicReport(start, end, shown, suppressed=len(rows) - len(shown), min_visitors=min_visitors)
