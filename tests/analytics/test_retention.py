"""Retention on a real store with a pinned clock: rows past due are seen, removed on time, and logged."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from support import FakeClock

from koekje.analytics import PageView, PageViewSink, Store, retention


@pytest.fixture
def clock() -> FakeClock:
    """Pinned in the future: ClickHouse's own TTL drops rows that are expired by the real time as they are
    inserted, so rows that only the pinned clock considers expired must be young by the real one."""
    return FakeClock(datetime.now(UTC) + timedelta(days=100))


def view(clock: FakeClock, age: timedelta, path: str) -> PageView:
    return PageView(clock() - age, "s", uuid.uuid4(), path, (), "", "NL", "203.0.113.0")


def test_rows_past_retention_are_seen_and_removed_on_time(store: Store, clock: FakeClock) -> None:
    PageViewSink(store).write(
        [
            view(clock, timedelta(days=731), "/expired"),
            view(clock, timedelta(days=729), "/kept"),
            view(clock, timedelta(days=1), "/new"),
        ]
    )
    [page_views] = [t for t in retention.status(store, clock) if t.table == "page_views"]
    assert (page_views.days, page_views.rows, page_views.past_due) == (730, 3, 1)
    assert page_views.last_applied is None

    assert retention.apply(store, clock)["page_views"] == 1
    assert sorted(p for (p,) in store.query(f"SELECT path FROM {store.table('page_views')}")) == [
        "/kept",
        "/new",
    ]

    clock.advance(days=2)  # a day later, "/kept" is due too
    [page_views] = [t for t in retention.status(store, clock) if t.table == "page_views"]
    assert page_views.past_due == 1 and page_views.last_removed == 1
    assert (
        page_views.last_applied is not None
        and page_views.last_applied.date() == (clock() - timedelta(days=2)).date()
    )
    assert retention.apply(store, clock)["page_views"] == 1


def test_every_table_with_visitor_data_is_covered(store: Store, clock: FakeClock) -> None:
    assert {t.table for t in retention.status(store, clock)} == {
        "page_views",
        "consent_ledger",
        "cookies_seen",
        "daily_stats",
        "aggregate_salts",
        "engagement",
        "subject_requests",
        "published_cells",
        "published_months",
        "rollups",
        "publications",
    }
