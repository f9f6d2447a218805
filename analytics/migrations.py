"""Numbered schema migrations. Each statement is idempotent, so a rerun after a crash is safe.

Retention is part of the schema: every table holding visitor data carries a TTL from the settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .clock import Clock, utcnow
from .store import Store

log = logging.getLogger("koekje.analytics")

# Tables without a TTL, and why. Every other table must expire its rows (a test enforces this).
NO_TTL_TABLES = {
    "schema_migrations": "bookkeeping, no personal data",
    "dashboard_users": "staff accounts, removed with `koekje users remove`",
}


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: Callable[[Store], list[str]]


def _initial(store: Store) -> list[str]:
    raw, ledger = retention(store)["page_views"], retention(store)["consent_ledger"]
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


MIGRATIONS: tuple[Migration, ...] = (Migration(1, "initial", _initial),)


def migrate(store: Store, clock: Clock = utcnow) -> list[int]:
    """Apply the migrations not yet recorded, then bring the TTLs in line with the retention settings;
    return the versions applied now."""
    store.command(
        f"""
        CREATE TABLE IF NOT EXISTS {store.table("schema_migrations")} (
            version UInt32, name String, applied_at DateTime64(3, 'UTC')
        ) ENGINE = MergeTree ORDER BY version
        """
    )
    done = {row[0] for row in store.query(f"SELECT version FROM {store.table('schema_migrations')}")}
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements(store):
            store.command(statement)
        store.insert_columns(
            "schema_migrations",
            {"version": [migration.version], "name": [migration.name], "applied_at": [clock()]},
        )
        log.info("applied migration %04d_%s", migration.version, migration.name)
        applied.append(migration.version)
    sync_retention(store)
    return applied


def retention(store: Store) -> dict[str, int]:
    """Days each table with visitor data keeps its rows, from the settings."""
    return {
        "page_views": store.settings.raw_retention_days,
        "consent_ledger": store.settings.ledger_retention_days,
    }


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
    for table, days in retention(store).items():
        if table in ddl and f"toIntervalDay({days})" not in ddl[table]:
            store.command(
                f"ALTER TABLE {store.table(table)} MODIFY TTL toDateTime(ts) + INTERVAL {days} DAY DELETE"
            )
            log.warning("retention of %s changed to %d days (existing rows included)", table, days)
            changed.append(table)
    return changed
