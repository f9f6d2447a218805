"""The storage seam: one ClickHouse client (embedded chDB or a server), used from worker threads only.

chDB has no async client and one engine per process, so every call here blocks: callers on an event loop
go through a thread (``starlette.concurrency.run_in_threadpool``). A lock serialises use of the client,
which is not safe to share between threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .settings import StoreSettings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger("koekje.analytics")


class StoreError(Exception):
    """Base class of koekje's storage errors."""


class StoreUnavailable(StoreError):
    """The store cannot be opened or reached; the message says what to do."""


class Store:
    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._lock = threading.Lock()

    def table(self, name: str) -> str:
        """The fully qualified, quoted name of one of koekje's tables."""
        return f"`{self.settings.database}`.`{name}`"

    @property
    def is_open(self) -> bool:
        return self._client is not None

    def open(self) -> None:
        with self._lock:
            if self._client is None:
                self._client = _connect(self.settings.dsn)
                self._client.command(f"CREATE DATABASE IF NOT EXISTS `{self.settings.database}`")

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._require().command(sql, parameters=parameters)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock:
            return [tuple(row) for row in self._require().query(sql, parameters=parameters).result_rows]

    def insert_columns(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        """Insert column-oriented data (one sequence per column): the fast path for batches."""
        with self._lock:
            self._require().insert(
                f"{self.settings.database}.{table}",
                list(columns.values()),
                column_names=list(columns),
                column_oriented=True,
            )

    def _require(self) -> Client:
        if self._client is None:
            raise StoreUnavailable("the store is not open: call Store.open() (koekje does this at startup)")
        return self._client

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connect(dsn: str) -> Client:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        return clickhouse_connect.get_client(dsn=dsn)
    except ClickHouseError as exc:
        if dsn.startswith("chdb:"):
            raise StoreUnavailable(
                f"cannot open the embedded store at {dsn!r}: {exc}. The embedded engine allows one process "
                "per data directory: stop the other koekje process using it (a running server, or run "
                "multi-worker setups against a ClickHouse server), then try again."
            ) from exc
        raise StoreUnavailable(f"cannot reach ClickHouse at {_redact(dsn)}: {exc}") from exc


def _redact(dsn: str) -> str:
    """The DSN without its password, for error messages and logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
