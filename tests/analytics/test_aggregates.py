"""The anonymous daily statistics: filled from page views by a materialized view, counted once however often
a batch is loaded, salted per day with a salt that is discarded, and kept when raw page views expire."""

import dataclasses
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from support import FakeClock, consent, page_views, runtime_of

from koekje.analytics import Store, StoreSettings, migrate, migrations, retention, topic_report
from koekje.analytics.aggregates import ALL_TOPICS, Salts, sync_timezone

MakeClient = Callable[..., TestClient]


def stats(store: Store, **where: str) -> list[dict[str, Any]]:
    conditions = " AND ".join(f"{column} = {{{column}:String}}" for column in where) or "1"
    rows = store.query(
        f"""
        SELECT day, topic, source, sum(page_views), sum(visits), sum(returning_visits), uniqMerge(visitors)
        FROM {store.table("daily_stats")} WHERE {conditions}
        GROUP BY day, topic, source ORDER BY day, topic, source
        """,
        where,
    )
    names = ("day", "topic", "source", "page_views", "visits", "returning_visits", "visitors")
    return [dict(zip(names, row, strict=True)) for row in rows]


def browse(client: TestClient, clock: FakeClock) -> None:
    """Two visitors: one with two visits (the second a returning one), one with a single visit."""
    consent(client, "analytics")
    client.get("/implantologie", headers={"referer": "https://www.google.nl/"})
    client.get("/cursussen")
    clock.advance(hours=1)
    client.cookies.delete("koekje_visit")  # expired in the browser
    client.get("/implantologie?utm_source=nieuwsbrief")
    client.cookies.clear()
    consent(client, "analytics")
    client.get("/over-ons")


def test_page_views_visits_and_visitors_per_day_and_topic(make_client: MakeClient, clock: FakeClock) -> None:
    client = make_client()
    browse(client, clock)
    store = runtime_of(client).store
    assert len(page_views(client)) == 4
    by_topic = {row["topic"]: row for row in stats(store) if row["source"] == ""}
    total = [row for row in stats(store, topic=ALL_TOPICS)]
    assert sum(r["page_views"] for r in total) == 4 and sum(r["visits"] for r in total) == 3
    assert sum(r["returning_visits"] for r in total) == 1
    assert {r["source"]: r["visits"] for r in total} == {"google.nl": 1, "nieuwsbrief": 1, "": 1}
    assert by_topic["cursussen"]["page_views"] == 1 and by_topic[""]["page_views"] == 1  # "" : no topic
    [implants] = stats(store, topic="implantologie", source="google.nl")
    assert implants["visitors"] == 1
    [all_of_it] = store.query(
        f"SELECT uniqMerge(visitors) FROM {store.table('daily_stats')} WHERE topic = '*'"
    )
    assert all_of_it == (2,)  # two visitors that day, counted once each whatever their visits


def test_a_batch_loaded_twice_is_counted_once(
    make_client: MakeClient, clock: FakeClock, tmp_path: Path
) -> None:
    client = make_client()
    consent(client, "analytics")
    client.get("/implantologie")
    store = runtime_of(client).store
    assert len(page_views(client)) == 1
    batch = tmp_path / "batch.jsonl"
    batch.write_bytes(
        b'{"ts":"2026-11-22T12:00:00Z","site":"default","visitor_id":"5f0c8d5e-8f3e-4f0e-9a53-1d6f7f4c1b2a",'
        b'"path":"/x","topics":["cursussen"],"referrer_host":"","country":"NL","ip_prefix":"203.0.113.0",'
        b'"visit_start":1795348800,"entry":true}\n'
    )
    for _ in range(2):  # a crash between the insert and the removal of the file: the loader tries again
        store.insert_files("page_views", [batch], token="group-1-1")
    assert len(page_views(client)) == 2
    [cursussen] = stats(store, topic="cursussen")
    assert (cursussen["page_views"], cursussen["visits"], cursussen["visitors"]) == (1, 1, 1)


def test_salts_are_drawn_around_today_and_discarded_after_a_day(store: Store, clock: FakeClock) -> None:
    salts = Salts(store, clock)
    salts.draw()
    table = store.table("aggregate_salts")
    today = clock().date()
    days = sorted(day for (day,) in store.query(f"SELECT day FROM {table}"))
    assert days == [today - timedelta(days=1), today, today + timedelta(days=1)]
    assert all(salt != 0 for (salt,) in store.query(f"SELECT salt FROM {table}"))
    salts.draw()  # the same day: nothing new
    assert len(store.query(f"SELECT day FROM {table}")) == 3

    clock.advance(days=2)
    salts.draw()
    salts.discard()
    days = sorted(day for (day,) in store.query(f"SELECT day FROM {table}"))
    assert days[0] == clock().date() - timedelta(days=1)  # the day before yesterday's salt is gone
    assert len(days) == 3


def test_a_day_without_its_salt_counts_views_but_no_visitors(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    """A page view that arrives after its day's salt was discarded (late, after a long outage) cannot be
    hashed with it any more: it is counted, but never with an unsalted (linkable) hash."""
    batch = tmp_path / "late.jsonl"
    batch.write_bytes(
        b'{"ts":"2026-10-01T12:00:00Z","site":"s","visitor_id":"5f0c8d5e-8f3e-4f0e-9a53-1d6f7f4c1b2a",'
        b'"path":"/x","topics":[],"referrer_host":"","country":"NL","ip_prefix":"203.0.113.0","entry":true}\n'
    )
    store.insert_files("page_views", [batch], token="late")
    [row] = stats(store, topic=ALL_TOPICS)
    assert (row["page_views"], row["visits"], row["visitors"]) == (1, 1, 0)


def test_raw_page_views_expire_and_the_statistics_stay(make_client: MakeClient, clock: FakeClock) -> None:
    client = make_client()
    browse(client, clock)
    store = runtime_of(client).store
    assert len(page_views(client)) == 4
    before = stats(store)
    clock.advance(days=731)  # past raw retention (730 days), within the statistics' (1825)
    removed = retention.apply(store, clock)
    assert removed["page_views"] == 4 and removed["daily_stats"] == 0
    assert store.query(f"SELECT count() FROM {store.table('page_views')}") == [(0,)]
    assert stats(store) == before
    status = {t.table: t for t in retention.status(store, clock)}
    assert status["daily_stats"].days == 1825 and status["daily_stats"].past_due == 0
    clock.advance(days=1825 - 731 + 1)
    assert retention.apply(store, clock)["daily_stats"] > 0 and stats(store) == []


def test_the_topic_report_outlives_raw_page_views(make_client: MakeClient, clock: FakeClock) -> None:
    """Page views, visits and each day's visitors come from the statistics, so the report is the same once
    raw rows are gone, and a day with too few visitors stays hidden."""
    client = make_client()
    browse(client, clock)
    store = runtime_of(client).store
    assert len(page_views(client)) == 4
    day = clock().date()
    before = topic_report(store, "default", day, day, min_visitors=1)
    assert {topic: (views, visitors) for topic, views, visitors, _ in before.rows} == {
        "implantologie": (2, 1),
        "cursussen": (1, 1),
        "": (1, 1),
    }
    clock.advance(days=731)
    retention.apply(store, clock)
    assert topic_report(store, "default", day, day, min_visitors=1).rows == before.rows
    assert topic_report(store, "default", day, day, min_visitors=2).rows == []


def test_days_are_the_sites_days_and_follow_a_change_of_time_zone(store: Store, tmp_path: Path) -> None:
    """23:30 UTC on 21 November is already 22 November in Amsterdam (and still the 21st in UTC)."""
    batch = tmp_path / "late-evening.jsonl"
    batch.write_bytes(
        b'{"ts":"2026-11-21T23:30:00Z","site":"s","visitor_id":"5f0c8d5e-8f3e-4f0e-9a53-1d6f7f4c1b2a",'
        b'"path":"/x","topics":[],"referrer_host":"","country":"NL","ip_prefix":"203.0.113.0","entry":true}\n'
    )
    store.insert_files("page_views", [batch], token="utc")
    assert [str(row["day"]) for row in stats(store, topic=ALL_TOPICS)] == ["2026-11-21"]  # the store's: UTC
    amsterdam = Store(dataclasses.replace(store.settings, timezone="Europe/Amsterdam"))
    try:
        migrate(amsterdam)
        assert not sync_timezone(amsterdam)  # migrate did it
        amsterdam.insert_files("page_views", [batch], token="amsterdam")
        assert [str(row["day"]) for row in stats(amsterdam, topic=ALL_TOPICS)] == ["2026-11-21", "2026-11-22"]
    finally:
        amsterdam.close()


def test_sources_are_names_never_raw_input(make_client: MakeClient) -> None:
    """Found by trying: e-mail addresses and markup in utm_source were kept for years as "anonymous"
    statistics, one row per value."""
    client = make_client()
    consent(client, "analytics")
    for source in ("Nieuwsbrief", "jan.jansen@example.nl", "<script>alert(1)</script>", "\u202egnp.exe"):
        client.get("/implantologie", params={"utm_source": source})
    client.get("/cursussen", headers={"referer": "https://www.duckduckgo.com/"})
    store = runtime_of(client).store
    assert len(page_views(client)) == 5
    sources = {row["source"]: row["page_views"] for row in stats(store, topic=ALL_TOPICS)}
    assert sources == {"nieuwsbrief": 1, "(other)": 3, "duckduckgo.com": 1}


def test_an_upgrade_counts_the_page_views_stored_before(
    chdb_dsn: str, database: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by trying: the statistics of an existing site started empty (the dashboard lost its past)."""
    with Store(StoreSettings(chdb_dsn, database)) as old:
        monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:5])  # before the statistics
        migrate(old, clock)
        monkeypatch.undo()
        day = (clock() - timedelta(days=20)).date()  # older than a salt lives: drawn for it, all the same
        old.insert_columns(
            "page_views",
            {
                "ts": [clock() - timedelta(days=20)] * 6,
                "site": ["default"] * 6,
                "visitor_id": [uuid.uuid4() for _ in range(6)],
                "path": ["/implantologie"] * 6,
                "topics": [["implantologie"]] * 6,
                "referrer_host": [""] * 6,
                "country": ["NL"] * 6,
                "ip_prefix": ["203.0.113.0"] * 6,
            },
        )
        try:
            assert migrate(old, clock) == [6, 7, 8, 9, 10, 11, 12]
            [row] = stats(old, topic="implantologie")
            assert (row["day"], row["page_views"], row["visitors"]) == (day, 6, 6)
            report = topic_report(old, "default", day, day, min_visitors=5)
            assert [(r[0], r[1], r[2]) for r in report.rows] == [("implantologie", 6, 6)]
        finally:
            old.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
