"""Anonymous daily statistics: what the privacy policies keep "for statistics" once raw page views expire.

A materialized view fills ``daily_stats`` as page views are inserted: per site, day, topic, country, device
and source, the page views, visits, returning visits and a sketch of the distinct visitors. The sketch
holds no visitor id: it counts ``sipHash64(visitor_id, salt)``, where the salt is a random number drawn for
that day alone and discarded soon after the day ends (``Salts``). While the salt exists, someone holding a
visitor's id could test whether that id is in a day's sketch; once it is gone, nobody can, so what remains
is a count, not data about a person. (ClickHouse's ``uniq`` keeps the exact hashes of small sets: without a
discarded salt the sketch would be pseudonymous, not anonymous.) The price: a visitor on two days counts
on both, so visitors over a range are visitor-days; exact distinct visitors come from raw rows while
those exist.

``topic`` is ``ALL_TOPICS`` for every page view (the totals), and each of the page's topics (``""`` for a
page without one) besides.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from .clock import Clock, utcnow
from .store import Store

log = logging.getLogger("koekje.analytics")

ALL_TOPICS = "*"  # not a topic name (those are lowercase letters, digits, "_" and "-")
SOURCE_NAME = "^[a-z0-9][a-z0-9._-]{0,39}$"  # a campaign source as the statistics keep it
OTHER_SOURCE = "(other)"
# A day's salt is kept while that day's page views may still arrive (late ones, from the spool after an
# outage): the day itself and the next. TTL removes any a stopped loader left behind after this many days.
SALT_TTL_DAYS = 7


def statements(store: Store, days: int) -> list[str]:
    """The migration: the statistics table, the salts and the view that fills the first from page views."""
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("daily_stats")} (
            site LowCardinality(String),
            day Date,
            topic LowCardinality(String),
            country LowCardinality(String),
            device LowCardinality(String),
            source String,
            page_views SimpleAggregateFunction(sum, UInt64),
            visits SimpleAggregateFunction(sum, UInt64),
            returning_visits SimpleAggregateFunction(sum, UInt64),
            visitors AggregateFunction(uniq, UInt64)
        ) ENGINE = AggregatingMergeTree
        PARTITION BY toYYYYMM(day)
        ORDER BY (site, day, topic, country, device, source)
        TTL toDateTime(day) + INTERVAL {days} DAY DELETE
        SETTINGS non_replicated_deduplication_window = 10000
        """,
        # (The deduplication window: a spooled batch loaded twice goes into page_views once, and the view
        # must not count it twice either.)
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("aggregate_salts")} (
            day Date,
            salt UInt64,
            created DateTime64(3, 'UTC')
        ) ENGINE = MergeTree
        ORDER BY day
        TTL toDateTime(created) + INTERVAL {SALT_TTL_DAYS} DAY DELETE
        """,
        view(store),
    ]


def view(store: Store) -> str:
    """The view that fills the statistics, counting days in the site's time zone."""
    mv, stats = store.table("daily_stats_mv"), store.table("daily_stats")
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {mv} TO {stats} AS {_select(store)}"


def backfill(store: Store, clock: Clock) -> int:
    """The statistics of the page views stored before they existed (an upgrade), salted like any other
    day's: salts are drawn for those days and discarded by the loader soon after. The number of page
    views counted."""
    views = store.table("page_views")
    days = [day for (day,) in store.query(f"SELECT DISTINCT {_day(store)} FROM {views} AS v")]
    if not days:
        return 0
    draw_salts(store, days, clock)
    store.command(f"INSERT INTO {store.table('daily_stats')} {_select(store)}")
    [(count,)] = store.query(f"SELECT count() FROM {views}")
    log.info("koekje counted %d page views stored before the daily statistics existed", count)
    return int(count)


def _select(store: Store) -> str:
    """Page views as rows of the statistics. The source is a campaign name or the referrer's site, never
    raw input: a ``utm_source`` that is not a plain lowercase name (an e-mail address, a recipient's
    token with odd characters, markup) counts as ``(other)``, and ``www.`` goes from hosts."""
    salts, views = store.table("aggregate_salts"), store.table("page_views")
    day = _day(store)
    return f"""
        SELECT
            v.site AS site,
            {day} AS day,
            topic,
            v.country AS country,
            v.device AS device,
            {source_expression("v")} AS source,
            count() AS page_views,
            countIf(v.entry) AS visits,
            countIf(v.entry AND v.returning) AS returning_visits,
            uniqStateIf(sipHash64(v.visitor_id, s.salt), s.salt != 0) AS visitors
        FROM {views} AS v
        LEFT JOIN (SELECT day, min(salt) AS salt FROM {salts} GROUP BY day) AS s ON s.day = {day}
        ARRAY JOIN arrayConcat(['{ALL_TOPICS}'], if(empty(v.topics), [''], v.topics)) AS topic
        GROUP BY site, day, topic, country, device, source
        """


def source_expression(alias: str) -> str:
    """The source of a page view as the statistics keep it (``alias`` names the page views)."""
    return (
        f"multiIf({alias}.utm_source = '', replaceRegexpOne({alias}.referrer_host, '^www[.]', ''), "
        f"match(lower({alias}.utm_source), '{SOURCE_NAME}'), lower({alias}.utm_source), '{OTHER_SOURCE}')"
    )


def _day(store: Store) -> str:
    return f"toDate(v.ts, '{store.settings.timezone}')"  # a checked zone name (StoreSettings)


def sync_timezone(store: Store) -> bool:
    """Count days in the configured time zone from now on (days counted before stay as they were); True
    when the view was changed."""
    rows = store.query(
        "SELECT create_table_query FROM system.tables "
        "WHERE database = {db:String} AND name = 'daily_stats_mv'",
        {"db": store.settings.database},
    )
    if not rows or _day(store) in rows[0][0]:
        return False
    store.command(f"DROP VIEW IF EXISTS {store.table('daily_stats_mv')}")
    store.command(view(store))
    log.warning("koekje counts the days of its statistics in %s from now on", store.settings.timezone)
    return True


def draw_salts(store: Store, days: Iterable[date], clock: Clock) -> None:
    """A salt for each of ``days`` that has none yet (sample data for past days, too)."""
    table = store.table("aggregate_salts")
    have = {row[0] for row in store.query(f"SELECT DISTINCT day FROM {table}")}
    missing = sorted(set(days) - have)
    if missing:
        store.insert_columns(
            "aggregate_salts",
            {
                "day": missing,
                "salt": [secrets.randbits(64) | 1 for _ in missing],  # never 0: 0 means "no salt"
                # The TTL counts in the store's own time, not a pinned clock's: the later of both.
                "created": [max(clock(), utcnow())] * len(missing),
            },
        )


class Salts:
    """Draws the salt of yesterday, today and tomorrow when missing, and discards older ones. Run by the one
    process that loads page views into the store, before each load."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._zone = ZoneInfo(store.settings.timezone)
        self._drawn: date | None = None  # the day for which the salts were last seen to
        self._discarded: date | None = None

    def draw(self) -> None:
        """Make sure the days page views are arriving for have a salt (once per day, then a no-op)."""
        today = self._clock().astimezone(self._zone).date()
        if self._drawn == today:
            return
        draw_salts(self._store, [today - timedelta(days=1), today, today + timedelta(days=1)], self._clock)
        self._drawn = today

    def discard(self) -> None:
        """Forget the salts of days before yesterday; call it only when no page view waits in the spool (a
        late one from such a day is still counted, but no longer among its distinct visitors)."""
        today = self._clock().astimezone(self._zone).date()
        if self._discarded == today:
            return
        cutoff = today - timedelta(days=1)
        table = self._store.table("aggregate_salts")
        [(old,)] = self._store.query(
            f"SELECT count() FROM {table} WHERE day < {{cutoff:Date}}", {"cutoff": cutoff}
        )
        if old:
            # A mutation rewrites the table's parts without those rows: the salts leave the disk.
            self._store.command(
                f"ALTER TABLE {table} DELETE WHERE day < {{cutoff:Date}} SETTINGS mutations_sync = 2",
                {"cutoff": cutoff},
            )
            log.info("koekje discarded %d daily salts: the statistics of those days are anonymous now", old)
        self._discarded = today
