"""Retention you can see and force: what each table with visitor data keeps, how old its oldest row is,
how many rows are past due, and when they were last removed.

ClickHouse's TTL removes expired rows by itself, but eventually (in merges, hours later). ``apply`` removes
them now, as of the given time, and logs the run in ``retention_runs``, so a privacy officer can show when
data was last expired and how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .clock import Clock, utcnow
from .migrations import retention
from .store import Store


@dataclass(frozen=True, slots=True)
class TableRetention:
    table: str
    days: int
    rows: int
    oldest: datetime | None
    past_due: int  # rows older than ``days``: removed by the next merge, or by ``apply`` now
    last_applied: datetime | None
    last_removed: int


def status(store: Store, clock: Clock = utcnow) -> list[TableRetention]:
    now = clock()
    runs = {
        table: (at, removed)
        for table, at, removed in store.query(
            "SELECT table, max(applied_at), argMax(removed, applied_at) "
            f"FROM {store.table('retention_runs')} GROUP BY table"
        )
    }
    tables = []
    for table, (column, days) in retention(store).items():
        [(rows, oldest, past_due)] = store.query(
            f"SELECT count(), min({column}), countIf({column} < {{due:DateTime64(3, 'UTC')}}) "
            f"FROM {store.table(table)}",
            {"due": now - timedelta(days=days)},
        )
        last = runs.get(table, (None, 0))
        tables.append(
            TableRetention(
                table, days, int(rows), oldest if rows else None, int(past_due), last[0], int(last[1])
            )
        )
    return tables


def apply(store: Store, clock: Clock = utcnow) -> dict[str, int]:
    """Remove every row past its table's retention, as of ``clock()``; the rows removed per table."""
    now = clock()
    removed = {}
    for table, (column, days) in retention(store).items():
        due = {"due": now - timedelta(days=days)}
        [(count,)] = store.query(
            f"SELECT count() FROM {store.table(table)} WHERE {column} < {{due:DateTime64(3, 'UTC')}}", due
        )
        if count:
            store.command(
                f"DELETE FROM {store.table(table)} WHERE {column} < {{due:DateTime64(3, 'UTC')}} "
                "SETTINGS mutations_sync = 2",
                due,
            )
        removed[table] = int(count)
    store.insert_columns(
        "retention_runs",
        {"table": list(removed), "applied_at": [now] * len(removed), "removed": list(removed.values())},
    )
    return removed
