"""The store on real ClickHouse engines: embedded chDB always; a ClickHouse server too when
KOEKJE_TEST_CLICKHOUSE_URL is set (e.g. http://default:@localhost:8123). Same code, same SQL."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from support import SERVER_ENV, server_dsn

from koekje.analytics import PageView, PageViewSink, Store, StoreSettings, StoreUnavailable, migrate
from koekje.analytics.migrations import MIGRATIONS, NO_TTL_TABLES

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["chdb", "server"])
def any_store(request: pytest.FixtureRequest, chdb_dsn: str, database: str) -> Iterator[Store]:
    if request.param == "server":
        dsn = server_dsn()
        if dsn is None:
            pytest.skip(f"no ClickHouse server: set {SERVER_ENV} to run the server path")
    else:
        dsn = chdb_dsn
    with Store(StoreSettings(dsn, database)) as store:
        migrate(store)
        yield store
        store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")


def view(ts: datetime, path: str = "/x", topics: tuple[str, ...] = ()) -> PageView:
    return PageView(ts, "site", uuid.uuid4(), path, topics, "", "NL", "203.0.113.0")


def test_migrations_are_recorded_and_idempotent(any_store: Store) -> None:
    assert migrate(any_store) == []
    versions = any_store.query(f"SELECT version FROM {any_store.table('schema_migrations')}")
    assert [v for (v,) in versions] == [m.version for m in MIGRATIONS]


def test_invariant_3_every_table_with_visitor_data_expires(any_store: Store) -> None:
    tables = dict(
        any_store.query(
            "SELECT name, create_table_query FROM system.tables WHERE database = {db:String}",
            {"db": any_store.settings.database},
        )
    )
    assert {"page_views", "consent_ledger"} <= tables.keys()
    for name, ddl in tables.items():
        if name not in NO_TTL_TABLES:
            assert " TTL " in ddl, f"{name} has no TTL: every table with visitor data must expire"
    assert "toIntervalDay(730)" in tables["page_views"]
    assert "toIntervalDay(1095)" in tables["consent_ledger"]


def test_ttl_removes_rows_past_retention(any_store: Store) -> None:
    now = datetime.now(UTC)
    PageViewSink(any_store).write(
        [view(now - timedelta(days=731), "/old"), view(now - timedelta(days=1), "/new")]
    )
    # TTL merges are eventual; materializing applies them now, as `retention apply` will.
    any_store.command(
        f"ALTER TABLE {any_store.table('page_views')} MATERIALIZE TTL SETTINGS mutations_sync = 2"
    )
    assert any_store.query(f"SELECT path FROM {any_store.table('page_views')}") == [("/new",)]


def test_page_views_round_trip(any_store: Store) -> None:
    event = view(NOW, "/cursussen/ä?", ("cursussen", "implantologie"))
    PageViewSink(any_store).write([event])
    [row] = any_store.query(
        f"SELECT ts, site, visitor_id, path, topics, referrer_host, country, ip_prefix "
        f"FROM {any_store.table('page_views')}"
    )
    assert row[0].replace(tzinfo=UTC) == NOW
    assert row[1:] == (
        "site",
        event.visitor_id,
        "/cursussen/ä?",
        ["cursussen", "implantologie"],
        "",
        "NL",
        "203.0.113.0",
    )


def test_store_refuses_work_when_closed(chdb_dsn: str, database: str) -> None:
    store = Store(StoreSettings(chdb_dsn, database))
    with pytest.raises(StoreUnavailable, match="not open"):
        store.query("SELECT 1")


def test_a_second_embedded_data_dir_in_one_process_is_explained(tmp_path: object, chdb_dsn: str) -> None:
    with Store(StoreSettings(chdb_dsn, "default")):  # this process's engine is on chdb_dsn
        other = Store(StoreSettings(f"chdb://{tmp_path}", "koekje"))
        with pytest.raises(StoreUnavailable, match="one process per data directory"):
            other.open()


def test_settings_validate() -> None:
    with pytest.raises(ValueError, match="plain identifier"):
        StoreSettings("chdb:///x", "bad-name")
    assert StoreSettings("chdb:///x").embedded
    assert not StoreSettings("https://ch:8443").embedded
