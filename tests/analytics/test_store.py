"""The store on real ClickHouse engines: embedded chDB always; a ClickHouse server too when
KOEKJE_TEST_CLICKHOUSE_URL is set (e.g. http://default:@localhost:8123), and a replicated cluster when
KOEKJE_TEST_CLICKHOUSE_CLUSTER names one that server belongs to. Same code, same SQL."""

import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client
from support import CLUSTER_ENV, SERVER_ENV, cluster_name, server_dsn

from koekje.analytics import PageView, PageViewSink, Store, StoreSettings, StoreUnavailable, migrate
from koekje.analytics.migrations import MIGRATIONS, NO_TTL_TABLES, sync_engine_settings

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["chdb", "server", "cluster"])
def any_store(request: pytest.FixtureRequest, chdb_dsn: str, database: str) -> Iterator[Store]:
    cluster = ""
    if request.param in ("server", "cluster"):
        dsn = server_dsn()
        if dsn is None:
            pytest.skip(f"no ClickHouse server: set {SERVER_ENV} to run the server path")
        if request.param == "cluster":
            cluster = cluster_name() or ""
            if not cluster:
                pytest.skip(
                    f"no ClickHouse cluster: set {CLUSTER_ENV} (and {SERVER_ENV}) to run the cluster path"
                )
    else:
        dsn = chdb_dsn
    with Store(StoreSettings(dsn, database, cluster=cluster)) as store:
        migrate(store)
        yield store
        on_cluster = f" ON CLUSTER `{cluster}`" if cluster else ""
        store.command(f"DROP DATABASE IF EXISTS `{database}`{on_cluster} SYNC")


def test_a_cluster_replicates_every_table(any_store: Store) -> None:
    # On a cluster every table keeps its data on each replica; elsewhere nothing is replicated.
    engines = any_store.query(
        "SELECT name, engine FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'",
        {"db": any_store.settings.database},
    )
    assert len(engines) >= 10
    replicated = {name for name, engine in engines if engine.startswith("Replicated")}
    assert replicated == ({name for name, _ in engines} if any_store.settings.cluster else set())


def test_every_migration_reads_as_replicated_ddl(store: Store) -> None:
    # No cluster here to run it on: each statement, as a cluster would get it, must at least be valid
    # ClickHouse (the engine's own parser, through formatQuery) and name a Replicated engine.
    clustered = Store(StoreSettings("https://replica-1.example:8443", "koekje", cluster="koekje"))
    statements = [clustered.database_ddl()]
    for migration in MIGRATIONS:
        statements += [clustered.schema(s) for s in migration.statements(clustered)]
    creates = 0
    for sql in statements:
        [(formatted,)] = store.query("SELECT formatQuery({sql:String})", {"sql": sql})
        if "MergeTree" in formatted:
            creates += 1
            engine = formatted.split("ENGINE = ", 1)[1]
            assert engine.startswith("Replicated"), formatted
    assert creates >= 15
    assert "ON CLUSTER koekje" in store.query("SELECT formatQuery({s:String})", {"s": statements[0]})[0][0]
    assert "/clickhouse/databases/koekje/koekje" in statements[0]  # two clusters, one Keeper: two databases
    # With arguments of their own (a version column), kept after the replica's defaults.
    everything = "\n".join(statements)
    assert "ENGINE = ReplicatedReplacingMergeTree(updated, deleted)" in everything
    # A batch loaded twice counts once on replicated tables too: their own deduplication window is set.
    assert "non_replicated_deduplication_window" not in everything
    assert everything.count("replicated_deduplication_window = 10000") >= 2
    assert clustered.schema(") engine = AggregatingMergeTree ORDER BY x") == (
        ") ENGINE = ReplicatedAggregatingMergeTree ORDER BY x"
    )
    plain = Store(StoreSettings("https://server.example:8443", "koekje"))
    assert plain.schema(statements[1]) == statements[1] and "ENGINE = MergeTree" in plain.schema(
        MIGRATIONS[0].statements(plain)[0]
    )


def test_a_cluster_makes_its_database_only_while_missing_and_only_a_replicated_one(store: Store) -> None:
    client = store._require()  # a real engine without a cluster: what a server would be asked, and answer
    assert isinstance(client, Client)
    on_cluster = Store(StoreSettings("https://r.example:8443", store.settings.database, cluster="koekje"))
    with pytest.raises(StoreUnavailable, match="not Replicated"):  # this one exists, and is Atomic
        on_cluster._create_database(client)
    missing = Store(StoreSettings("https://r.example:8443", "koekje_not_there", cluster="koekje"))
    with pytest.raises(Exception, match="CLUSTER_DOESNT_EXIST"):  # made ON CLUSTER: no such cluster here
        missing._create_database(client)


@pytest.mark.parametrize("cluster", ["a b", "x;DROP", "'c'", "-c"])
def test_a_cluster_name_is_a_name(cluster: str) -> None:
    with pytest.raises(ValueError, match=r"analytics\.cluster"):
        StoreSettings("https://server.example:8443", cluster=cluster)


def test_a_cluster_needs_a_server(chdb_dsn: str) -> None:
    with pytest.raises(ValueError, match="needs a ClickHouse server"):
        StoreSettings(chdb_dsn, cluster="koekje")


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def view(ts: datetime, path: str = "/x", topics: tuple[str, ...] = ()) -> PageView:
    return PageView(ts, "site", uuid.uuid4(), path, topics, "", "NL", "203.0.113.0")


def test_migrations_are_recorded_and_idempotent(any_store: Store) -> None:
    assert migrate(any_store) == []
    versions = any_store.query(f"SELECT version FROM {any_store.table('schema_migrations')} ORDER BY version")
    assert [v for (v,) in versions] == [m.version for m in MIGRATIONS]


def test_the_embedded_engine_removes_old_parts_without_a_burst_of_threads(any_store: Store) -> None:
    """On the embedded store every MergeTree table removes its outdated parts one by one (in parallel,
    ClickHouse kept ~115 more threads in the site's process); a server's tables keep the server's setting.
    Set again by each migrate, so tables made later and stores made before get it."""
    engines = any_store.query(
        "SELECT name, engine_full FROM system.tables "
        "WHERE database = {db:String} AND engine LIKE '%MergeTree'",
        {"db": any_store.settings.database},
    )
    assert len(engines) >= 15
    sequential = {name for name, engine in engines if "concurrent_part_removal_threshold = 1000000" in engine}
    assert sequential == ({name for name, _ in engines} if any_store.settings.embedded else set())
    assert sync_engine_settings(any_store) == []  # nothing left to change
    if any_store.settings.embedded:
        table = any_store.table("page_views")
        for other in (100, 10000000):  # (another value, also one the wanted one is the start of)
            setting = f"concurrent_part_removal_threshold = {other}"
            any_store.command(f"ALTER TABLE {table} MODIFY SETTING {setting}")
            assert sync_engine_settings(any_store) == ["page_views"]


def test_a_servers_tables_keep_the_servers_part_removal() -> None:
    # Asked of a server, nothing is changed, nor even asked (no server is reachable at this address).
    assert sync_engine_settings(Store(StoreSettings("https://server.example:8443", "koekje"))) == []


def test_invariant_3_every_table_with_visitor_data_expires(any_store: Store) -> None:
    tables = dict(
        any_store.query(
            "SELECT name, create_table_query FROM system.tables WHERE database = {db:String} "
            "AND engine != 'MaterializedView'",  # a view stores nothing; the table it fills has the TTL
            {"db": any_store.settings.database},
        )
    )
    assert {"page_views", "consent_ledger", "daily_stats"} <= tables.keys()
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


def test_connects_and_prepares_on_first_use_and_close_is_final(chdb_dsn: str, database: str) -> None:
    store = Store(StoreSettings(chdb_dsn, database), prepare=migrate)
    assert store.query(f"SELECT count() FROM {store.table('page_views')}") == [(0,)]
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.query("SELECT 1")
    store.open()
    store.command(f"DROP DATABASE `{database}` SYNC")
    store.close()


def test_an_unreachable_server_fails_fast_until_the_retry_time(closed_port: int) -> None:
    store = Store(StoreSettings(f"http://default:@127.0.0.1:{closed_port}"), retry_after=3600)
    with pytest.raises(
        StoreUnavailable, match=r"cannot reach ClickHouse at http://default:\*\*\*@127\.0\.0\.1"
    ):
        store.open()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="next attempt within 3600 s"):
        store.query("SELECT 1")
    assert time.monotonic() - started < 0.05  # no new connection attempt inside the retry window


def test_passwords_are_redacted_from_errors(closed_port: int) -> None:
    store = Store(StoreSettings(f"http://koekje:s3cret@127.0.0.1:{closed_port}"))
    with pytest.raises(StoreUnavailable) as error:
        store.open()
    assert "s3cret" not in str(error.value) and "koekje:***@" in str(error.value)


def test_changed_retention_is_applied_to_the_tables(store: Store) -> None:
    shorter = Store(StoreSettings(store.settings.dsn, store.settings.database, raw_retention_days=30))
    with shorter:
        assert migrate(shorter) == []
    ddl = dict(
        store.query(
            "SELECT name, create_table_query FROM system.tables WHERE database = {db:String}",
            {"db": store.settings.database},
        )
    )
    assert "toIntervalDay(30)" in ddl["page_views"]
    assert "toIntervalDay(1095)" in ddl["consent_ledger"]


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
