"""Shared fixtures. Storage is real chDB: one data directory per test session (chDB allows one engine per
process) and a fresh database per test. Time is pinned by passing a clock, never by sleeping."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient
from support import CLIENT_IP, SECRET, TOPICS, FakeClock, runtime_of, site

from koekje.analytics import Store, StoreSettings, migrate
from koekje.middleware import Config, KoekjeMiddleware
from koekje.middleware.config import AnalyticsSection, DashboardSection

pytest_plugins = ["browsing"]  # the browser tests' fixtures


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def database() -> str:
    return f"koekje_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(chdb_dsn: str, database: str) -> Iterator[Store]:
    """A migrated store on a fresh chDB database, dropped afterwards."""
    with Store(StoreSettings(chdb_dsn, database)) as opened:
        migrate(opened)
        yield opened
        opened.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")


@pytest.fixture
def make_config(chdb_dsn: str, database: str, tmp_path: Path) -> Callable[..., Config]:
    """A valid Config on this test's database and spool; keyword arguments replace whole sections."""

    def make(**sections: Any) -> Config:
        config = Config(
            secret_keys=(SECRET,),
            analytics=AnalyticsSection(
                dsn=chdb_dsn,
                database=database,
                topics=dict(TOPICS),
                flush_interval_seconds=0.05,
                spool_dir=str(tmp_path / "spool"),
            ),
            dashboard=DashboardSection(min_visitors=1),
        )
        return msgspec.structs.replace(config, **sections)

    return make


@pytest.fixture
def make_client(make_config: Callable[..., Config], clock: FakeClock) -> Iterator[Callable[..., TestClient]]:
    """A TestClient around KoekjeMiddleware(site()); lifespan runs, so the store opens and drains."""
    clients: list[TestClient] = []

    def make(config: Config | None = None, app: Any = None, client_ip: str = CLIENT_IP) -> TestClient:
        middleware = KoekjeMiddleware(app or site(), config or make_config(), clock=clock)
        client = TestClient(middleware, base_url="http://shop.test", client=(client_ip, 50000))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
    # Clients of one test may share a store (workers of one site): drop each database once, directly.
    for settings in {runtime_of(client).store.settings for client in clients}:
        with Store(settings) as store:
            store.command(f"DROP DATABASE IF EXISTS `{settings.database}` SYNC")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(__file__).parent / "artifacts"
    path.mkdir(exist_ok=True)
    return path
