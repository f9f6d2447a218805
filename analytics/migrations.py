"""Numbered schema migrations. Each statement is idempotent, so a rerun after a crash is safe.

Retention is part of the schema: every table holding visitor data carries a TTL from the settings.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from . import aggregates
from .clock import Clock, utcnow
from .store import Store

log = logging.getLogger("koekje.analytics")
WANT_DAYS = 90  # (koekje.analytics.publish: a kind of filter is published this long after a view asked)
# The embedded engine runs inside the site's process. When a table has this many outdated parts to remove at
# once (the loader's small inserts, merged), ClickHouse removes them in parallel on threads it then keeps:
# ~115 more threads in the web process, each with its allocator's cache, which was most of the memory the
# site grew by (benchmarks/RESULTS.md, "Memory"). Removing them one by one, on the background thread, is
# plenty for a site's tables. A server's tables are left to the server's configuration.
EMBEDDED_ENGINE_SETTINGS = {"concurrent_part_removal_threshold": 1_000_000}

# Tables without a TTL, and why. Every other table must expire its rows (a test enforces this).
NO_TTL_TABLES = {
    "schema_migrations": "bookkeeping, no personal data",
    "dashboard_users": "staff accounts, removed with `koekje users remove`",
    "consent_texts": "the banner texts shown, no personal data; kept while any consent proof refers to them",
}


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: Callable[[Store], list[str]]
    # Run after the statements, for what SQL alone cannot say (e.g. filling a new table from existing rows).
    after: Callable[[Store, Clock], object] | None = None


def _initial(store: Store) -> list[str]:
    raw, ledger = retention(store)["page_views"][1], retention(store)["consent_ledger"][1]
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("page_views")} (
            ts DateTime64(3, 'UTC'),
            site LowCardinality(String),
            visitor_id UUID,
            path String,
            topics Array(LowCardinality(String)),
            referrer_host String,
            country LowCardinality(String),
            ip_prefix String
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMM(ts)
        ORDER BY (site, toDate(ts), visitor_id)
        TTL toDateTime(ts) + INTERVAL {raw} DAY DELETE
        """,
        # The proof of consent: written (and fsynced) before the visitor's choice is acknowledged.
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("consent_ledger")} (
            consent_id UUID,
            previous_id Nullable(UUID),
            ts DateTime64(3, 'UTC'),
            visitor_id Nullable(UUID),
            categories Array(LowCardinality(String)),
            policy_revision UInt32,
            lang LowCardinality(String),
            country LowCardinality(String),
            ip_prefix String,
            gpc Bool,
            source LowCardinality(String)
        ) ENGINE = MergeTree
        ORDER BY (ts, consent_id)
        TTL toDateTime(ts) + INTERVAL {ledger} DAY DELETE
        SETTINGS fsync_after_insert = 1, fsync_part_directory = 1
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("dashboard_users")} (
            username String,
            password_hash String,
            role LowCardinality(String),
            updated DateTime64(3, 'UTC'),
            deleted UInt8
        ) ENGINE = ReplacingMergeTree(updated, deleted)
        ORDER BY username
        """,
    ]


def _chained_ledger(store: Store) -> list[str]:
    """The ledger becomes a hash chain with services, method and the texts shown; the texts themselves are
    kept once per hash; the names of cookies the site sets without declaring them are tallied."""
    ledger = store.table("consent_ledger")
    return [
        f"ALTER TABLE {ledger} RENAME COLUMN IF EXISTS source TO method",
        f"""
        ALTER TABLE {ledger}
            ADD COLUMN IF NOT EXISTS services Array(LowCardinality(String)) AFTER categories,
            ADD COLUMN IF NOT EXISTS texts_hash String AFTER method,
            ADD COLUMN IF NOT EXISTS site LowCardinality(String),
            ADD COLUMN IF NOT EXISTS visitor_digest String,
            ADD COLUMN IF NOT EXISTS chain UUID,
            ADD COLUMN IF NOT EXISTS seq UInt64,
            ADD COLUMN IF NOT EXISTS prev_hash String,
            ADD COLUMN IF NOT EXISTS prev_ts DateTime64(3, 'UTC'),
            ADD COLUMN IF NOT EXISTS hash String,
            ADD COLUMN IF NOT EXISTS written_at DateTime64(3, 'UTC') DEFAULT now64(3)
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("consent_texts")} (
            hash String,
            lang LowCardinality(String),
            body String,
            first_seen DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(first_seen)
        ORDER BY hash
        SETTINGS fsync_after_insert = 1, fsync_part_directory = 1
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("cookies_seen")} (
            site LowCardinality(String),
            name String,
            first_seen DateTime64(3, 'UTC'),
            last_seen DateTime64(3, 'UTC'),
            count UInt64,
            sample_path String
        ) ENGINE = MergeTree
        ORDER BY (site, name)
        TTL toDateTime(last_seen) + INTERVAL {retention(store)["cookies_seen"][1]} DAY DELETE
        """,
    ]


def _spooled_loading(store: Store) -> list[str]:
    """Batches come from the spool, each with its id as deduplication token: a batch loaded twice (after a
    crash between insert and removal) must count once. Replicated tables deduplicate anyway; MergeTree needs
    a window of remembered tokens."""
    return [
        f"ALTER TABLE {store.table(table)} MODIFY SETTING non_replicated_deduplication_window = 10000"
        for table in ("page_views", "cookies_seen", "consent_texts")
    ]


def _campaigns_and_devices(store: Store) -> list[str]:
    """Where a page view came from (UTM values) and on what (device class, browser and OS families)."""
    return [
        f"""
        ALTER TABLE {store.table("page_views")}
            ADD COLUMN IF NOT EXISTS utm_source LowCardinality(String),
            ADD COLUMN IF NOT EXISTS utm_medium LowCardinality(String),
            ADD COLUMN IF NOT EXISTS utm_campaign String,
            ADD COLUMN IF NOT EXISTS device LowCardinality(String),
            ADD COLUMN IF NOT EXISTS browser LowCardinality(String),
            ADD COLUMN IF NOT EXISTS os LowCardinality(String)
        """
    ]


def _retention_runs(store: Store) -> list[str]:
    """When expired rows were removed by hand (``koekje retention apply``), and how many."""
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("retention_runs")} (
            table LowCardinality(String),
            applied_at DateTime64(3, 'UTC'),
            removed UInt64
        ) ENGINE = MergeTree
        ORDER BY (table, applied_at)
        TTL toDateTime(applied_at) + INTERVAL 3650 DAY DELETE
        """
    ]


def _visits_and_aggregates(store: Store) -> list[str]:
    """Visits and new vs returning visitors on each page view; the anonymous daily statistics, filled from
    page views as they arrive (``koekje.analytics.aggregates``)."""
    return [
        f"""
        ALTER TABLE {store.table("page_views")}
            ADD COLUMN IF NOT EXISTS visit_start DateTime('UTC'),
            ADD COLUMN IF NOT EXISTS entry Bool,
            ADD COLUMN IF NOT EXISTS returning Bool
        """,
        *aggregates.statements(store, retention(store)["daily_stats"][1]),
    ]


def _engagement(store: Store) -> list[str]:
    """How long consented pages were visible and how far they were scrolled (the banner's beacons)."""
    days = retention(store)["engagement"][1]
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("engagement")} (
            ts DateTime64(3, 'UTC'),
            site LowCardinality(String),
            visitor_id UUID,
            visit_start DateTime('UTC'),
            path String,
            visible_ms UInt32,
            scroll UInt8
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMM(ts)
        ORDER BY (site, toDate(ts), visitor_id)
        TTL toDateTime(ts) + INTERVAL {days} DAY DELETE
        SETTINGS non_replicated_deduplication_window = 10000
        """
    ]


def _subject_requests(store: Store) -> list[str]:
    days = retention(store)["subject_requests"][1]
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("subject_requests")} (
            id UUID,
            reference String,
            kind LowCardinality(String),
            received Date,
            due Date,
            done Nullable(DateTime64(3, 'UTC')),
            handled_by String,
            details String,
            ts DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(ts)
        ORDER BY id
        TTL toDateTime(ts) + INTERVAL {days} DAY DELETE
        """
    ]


def _ended_sessions(store: Store) -> list[str]:
    """Dashboard sessions ended before they expired (log out): a digest of each token, until it would have
    expired anyway. Every worker checks it, so logging out ends the session everywhere at once."""
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("dashboard_ended_sessions")} (
            digest FixedString(32),
            until DateTime('UTC')
        ) ENGINE = ReplacingMergeTree
        ORDER BY digest
        TTL until DELETE
        """
    ]


def _erased_days(store: Store) -> list[str]:
    """The days on which an erased visitor had page views. The anonymous statistics keep counting them, so
    on those days a report from raw rows minus one from the statistics would be that visitor: the dashboard
    shows no raw-row reports for them. Kept as long as raw page views are."""
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("erased_days")} (
            site LowCardinality(String),
            day Date
        ) ENGINE = ReplacingMergeTree
        ORDER BY (site, day)
        TTL toDateTime(day) + INTERVAL {store.settings.raw_retention_days + 1} DAY DELETE
        """
    ]


def _published_cells(store: Store) -> list[str]:
    """The cells of finished days, worked out once (``koekje.analytics.publish``): per site, grid (a kind
    of table), day and version, the segments and metrics of each cell that counts; which days of which
    kind of filter are published, and the kinds of filter views asked for. Only counts of at least
    ``min_visitors`` people: kept as long as the anonymous statistics (cells made of raw page views go
    with raw retention, removed by the publisher). Not partitioned: a view reads one grid over many days,
    and a part per month would be a part more to open per month."""
    days = store.settings.aggregate_retention_days
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("published_cells")} (
            site LowCardinality(String),
            grid LowCardinality(String),
            day Date,
            version UInt64,
            raw UInt8,
            s1 String, s2 String, s3 String, s4 String, s5 String,
            views UInt64,
            visits UInt64,
            returning UInt64,
            visitors UInt64
        ) ENGINE = MergeTree
        ORDER BY (site, grid, day, version)
        TTL toDateTime(day) + INTERVAL {days} DAY DELETE
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("publications")} (
            site LowCardinality(String),
            filters LowCardinality(String),
            day Date,
            version UInt64,
            code String,
            raw_rows UInt64,
            stats_views UInt64,
            published DateTime64(3, 'UTC')
        ) ENGINE = MergeTree
        ORDER BY (site, filters, day, version)
        TTL toDateTime(day) + INTERVAL {days} DAY DELETE
        """,
        # The kinds of filter the dashboard's views asked for (no values, nobody's data): published too.
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("publication_wants")} (
            site LowCardinality(String),
            filters LowCardinality(String),
            asked DateTime64(3, 'UTC')
        ) ENGINE = MergeTree
        ORDER BY (site, filters, asked)
        TTL toDateTime(asked) + INTERVAL {WANT_DAYS} DAY DELETE
        """,
    ]


def _published_months(store: Store) -> list[str]:
    """Whole months of published cells summed per segment, for reports that sum over days: a dozen rows
    per segment for a year instead of one per day (``koekje.analytics.publish``). Which months are rolled
    up, from which versions of their days (``made_of``). Sums of counts that passed the cell rule
    already; kept as long as the days they are made of."""
    days = store.settings.aggregate_retention_days
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("published_months")} (
            site LowCardinality(String),
            grid LowCardinality(String),
            month Date,
            version UInt64,
            raw UInt8,
            s1 String, s2 String, s3 String, s4 String, s5 String,
            views UInt64,
            visits UInt64,
            returning UInt64,
            visitors UInt64
        ) ENGINE = MergeTree
        ORDER BY (site, grid, month, version)
        TTL toDateTime(month) + INTERVAL {days} DAY DELETE
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("rollups")} (
            site LowCardinality(String),
            filters LowCardinality(String),
            month Date,
            version UInt64,
            code String,
            made_of UInt64,
            published DateTime64(3, 'UTC')
        ) ENGINE = MergeTree
        ORDER BY (site, filters, month, version)
        TTL toDateTime(month) + INTERVAL {days} DAY DELETE
        """,
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", _initial),
    Migration(2, "chained_ledger", _chained_ledger),
    Migration(3, "spooled_loading", _spooled_loading),
    Migration(4, "campaigns_and_devices", _campaigns_and_devices),
    Migration(5, "retention_runs", _retention_runs),
    Migration(6, "visits_and_aggregates", _visits_and_aggregates, aggregates.backfill),
    Migration(7, "engagement", _engagement),
    Migration(8, "subject_requests", _subject_requests),
    Migration(9, "ended_sessions", _ended_sessions),
    Migration(10, "erased_days", _erased_days),
    Migration(11, "published_cells", _published_cells),
    Migration(12, "published_months", _published_months),
)


def migrate(store: Store, clock: Clock = utcnow) -> list[int]:
    """Apply the migrations not yet recorded, then bring the TTLs in line with the retention settings;
    return the versions applied now."""
    store.command(
        store.schema(
            f"""
            CREATE TABLE IF NOT EXISTS {store.table("schema_migrations")} (
                version UInt32, name String, applied_at DateTime64(3, 'UTC')
            ) ENGINE = MergeTree ORDER BY version
            """
        )
    )
    done = {row[0] for row in store.query(f"SELECT version FROM {store.table('schema_migrations')}")}
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements(store):
            store.command(store.schema(statement))  # (replicated tables on a cluster)
        if migration.after is not None:
            migration.after(store, clock)
        store.insert_columns(
            "schema_migrations",
            {"version": [migration.version], "name": [migration.name], "applied_at": [clock()]},
        )
        log.info("applied migration %04d_%s", migration.version, migration.name)
        applied.append(migration.version)
    sync_retention(store)
    aggregates.sync_timezone(store)
    sync_engine_settings(store)
    return applied


def retention(store: Store) -> dict[str, tuple[str, int]]:
    """For each table with visitor data: the time column its TTL counts from, and the days it keeps rows."""
    return {
        "page_views": ("ts", store.settings.raw_retention_days),
        "consent_ledger": ("ts", store.settings.ledger_retention_days),
        # Cookie names and a sample path the site itself produced: kept as long as raw page views.
        "cookies_seen": ("last_seen", store.settings.raw_retention_days),
        "engagement": ("ts", store.settings.raw_retention_days),  # raw, like the page views it describes
        # Anonymous: kept longer, and still not for ever.
        "daily_stats": ("day", store.settings.aggregate_retention_days),
        # What keeps the statistics of a day linkable to a visitor id: discarded by the loader after a day,
        # by TTL at the latest this many days after it was drawn. (Counted from the day itself, a salt drawn
        # for an older day, to count page views stored before the statistics existed, vanished on insert and
        # those days counted no visitors.)
        "aggregate_salts": ("created", aggregates.SALT_TTL_DAYS),
        # Cells of the dashboard's tables, worked out once per finished day: counts of k or more people.
        "published_cells": ("day", store.settings.aggregate_retention_days),
        "publications": ("day", store.settings.aggregate_retention_days),
        "published_months": ("month", store.settings.aggregate_retention_days),
        "rollups": ("month", store.settings.aggregate_retention_days),
        # The data-subject requests answered (and who asked, by reference): the site's proof of answering.
        "subject_requests": ("ts", store.settings.request_log_retention_days),
    }


def sync_engine_settings(store: Store) -> list[str]:
    """On the embedded store, give every MergeTree table of koekje's the settings in
    ``EMBEDDED_ENGINE_SETTINGS`` (a change of metadata only); the tables changed."""
    if not store.settings.embedded:
        return []
    changed = []
    for table, engine in store.query(
        "SELECT name, engine_full FROM system.tables "
        "WHERE database = {db:String} AND engine LIKE '%MergeTree'",
        {"db": store.settings.database},
    ):
        missing = [
            f"{name} = {value}"
            for name, value in EMBEDDED_ENGINE_SETTINGS.items()
            if not re.search(rf"\b{name} = {value}(,|$)", engine)
        ]
        if missing:
            store.command(f"ALTER TABLE {store.table(table)} MODIFY SETTING {', '.join(missing)}")
            changed.append(table)
    return changed


def sync_retention(store: Store) -> list[str]:
    """Change the TTL of tables whose retention differs from the settings; the tables changed.
    ClickHouse applies a changed TTL to existing rows too (``materialize_ttl_after_modify``)."""
    ddl = dict(
        store.query(
            "SELECT name, create_table_query FROM system.tables WHERE database = {db:String}",
            {"db": store.settings.database},
        )
    )
    changed = []
    for table, (column, days) in retention(store).items():
        if table in ddl and f"toDateTime({column}) + toIntervalDay({days})" not in ddl[table]:
            store.command(
                f"ALTER TABLE {store.table(table)} "
                f"MODIFY TTL toDateTime({column}) + INTERVAL {days} DAY DELETE"
            )
            log.warning("retention of %s changed to %d days (existing rows included)", table, days)
            changed.append(table)
    return changed
