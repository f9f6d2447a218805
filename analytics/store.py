"""The storage seam: one ClickHouse client (embedded chDB or a server), used from worker threads only.

chDB has no async client and one engine per process, so every call here blocks: callers on an event loop
go through a thread (``starlette.concurrency.run_in_threadpool``). A lock serialises use of the client,
which is not safe to share between threads.

With ``ownership`` (several worker processes on one embedded store), only the process holding it opens
chDB, and serves the others' calls on a local socket; the others' clients are that socket
(``koekje.analytics.remote``). When the owner dies and this process takes the lock, its next call opens
the store itself.

On a cluster (``StoreSettings.cluster``) the database is a Replicated one, created ``ON CLUSTER``: its DDL log
in Keeper runs every CREATE and ALTER on each replica, also on one that was down or joins later (plain
``ON CLUSTER`` on each statement would leave those behind), and ``schema`` turns every MergeTree-family
engine into its Replicated counterpart, so each replica holds all the data. One shard: koekje's queries
read local tables, not Distributed ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .remote import Ownership, RemoteClient, StoreServer
from .settings import StoreSettings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger("koekje.analytics")
# A MergeTree-family engine as koekje's DDL writes it (with or without arguments), not yet Replicated.
_ENGINE = re.compile(r"\bENGINE\s*=\s*(?!Replicated)(\w*MergeTree)\b", re.IGNORECASE)
# Insert deduplication (a spooled batch loaded twice counts once): a setting of its own on replicated tables.
_DEDUPLICATION = re.compile(r"\bnon_replicated_deduplication_window\b")


class StoreError(Exception):
    """Base class of koekje's storage errors."""


class StoreUnavailable(StoreError):
    """The store cannot be opened or reached; the message says what to do."""


class Store:
    """A lazily connected client. The first use connects (and runs ``prepare``, e.g. the migrations);
    when that fails, uses within ``retry_after`` seconds fail at once instead of waiting on a dead
    server, and the next use after that tries again. ``close`` is final until ``open`` is called."""

    def __init__(
        self,
        settings: StoreSettings,
        *,
        prepare: Callable[[Store], object] | None = None,
        retry_after: float = 30.0,
        ownership: Ownership | None = None,
        lock_timeout: float = 15.0,
    ) -> None:
        self.settings = settings
        self._prepare = prepare
        self._retry_after = retry_after
        self._ownership = ownership if settings.embedded else None
        self._server: StoreServer | None = None
        self._client: Client | RemoteClient | None = None
        self._closed = False
        self._failed_at: float | None = None
        self._failure = ""
        self._lock = threading.RLock()  # re-entrant: `prepare` runs under it and uses the store
        # A call that waits longer than this for another (a slow or hung query) gives up: threads are not
        # piled up behind a store that does not answer.
        self._lock_timeout = lock_timeout

    def schema(self, sql: str) -> str:
        """DDL as this store runs it: unchanged on one server or the embedded store; on a cluster, each
        MergeTree-family engine becomes its Replicated counterpart, with the servers' default replica path
        and name (``default_replica_path``, ``{replica}``) and its own arguments kept, and the insert
        deduplication window koekje sets is the replicated one."""
        if not self.settings.cluster:
            return sql
        sql = _DEDUPLICATION.sub("replicated_deduplication_window", sql)
        return _ENGINE.sub(lambda found: f"ENGINE = Replicated{found[1]}", sql)

    def database_ddl(self) -> str:
        """The statement that creates koekje's database (on a cluster: Replicated, on every replica; its
        Keeper path names the cluster, so two clusters sharing a Keeper never share a database)."""
        database, cluster = self.settings.database, self.settings.cluster
        if not cluster:
            return f"CREATE DATABASE IF NOT EXISTS `{database}`"
        return (
            f"CREATE DATABASE IF NOT EXISTS `{database}` ON CLUSTER `{cluster}` "
            f"ENGINE = Replicated('/clickhouse/databases/{cluster}/{database}', '{{shard}}', '{{replica}}')"
        )

    def _create_database(self, client: Client) -> None:
        """koekje's database, made once. On a cluster the ON CLUSTER statement runs only while it is missing
        (it waits for every replica, and one down for maintenance must not stop a restart), and an existing
        database must be a Replicated one: tables in any other would never leave this server."""
        if not self.settings.cluster:
            client.command(self.database_ddl())
            return
        [(engine,)] = client.query(
            "SELECT any(engine) FROM system.databases WHERE name = {db:String}",
            parameters={"db": self.settings.database},
        ).result_rows or [("",)]
        if not engine:
            client.command(self.database_ddl())
        elif engine != "Replicated":
            raise StoreUnavailable(
                f"analytics.cluster is set, but the database {self.settings.database!r} on this server is "
                f"{engine}, not Replicated: its tables would not be replicated. Move the data to a new "
                "database (analytics.database) or remove analytics.cluster"
            )

    def table(self, name: str) -> str:
        """The fully qualified, quoted name of one of koekje's tables."""
        return f"`{self.settings.database}`.`{name}`"

    def open(self) -> None:
        """Connect now (and prepare); raises StoreUnavailable with what to do when that fails."""
        with self._lock:
            self._closed = False
            self._failed_at = None
            self._connect()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._disconnect()

    @property
    def remote(self) -> bool:
        """Whether another process owns the (embedded) store and this one asks it."""
        return isinstance(self._client, RemoteClient)

    def _disconnect(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        with self._locked():
            self._require().command(sql, parameters=parameters)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._locked():
            return [tuple(row) for row in self._require().query(sql, parameters=parameters).result_rows]

    def insert_columns(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        """Insert column-oriented data (one sequence per column): the fast path for batches."""
        with self._locked():
            self._require().insert(
                f"{self.settings.database}.{table}",
                list(columns.values()),
                column_names=list(columns),
                column_oriented=True,
            )

    def insert_raw(self, table: str, payload: bytes, *, token: str | None = None) -> None:
        """Insert JSON rows (one per line) as they are; ``token`` makes a repeated insert of the same batch a
        no-op (ClickHouse's insert deduplication)."""
        settings: dict[str, Any] = {"date_time_input_format": "best_effort"}
        if token is not None:
            settings["insert_deduplication_token"] = token
        with self._locked():
            self._require().raw_insert(
                f"{self.settings.database}.{table}",
                None,
                insert_block=payload,
                fmt="JSONEachRow",
                settings=settings,
            )

    def insert_files(self, table: str, paths: Sequence[Path], *, token: str) -> None:
        """Insert files of JSON rows (all in one directory) as one insert. The embedded engine reads the
        files itself (no copy through Python, ~30% less CPU per row); a server, or another process's store,
        gets their bytes."""
        with self._locked():
            client = self._require()
            if isinstance(client, RemoteClient) or not self.settings.embedded:
                self.insert_raw(table, b"\n".join(path.read_bytes() for path in paths), token=token)
                return
            directory = _quoted(str(paths[0].parent))
            names = ",".join(_quoted(path.name) for path in paths)
            where = f"{directory}/{{{names}}}" if len(paths) > 1 else f"{directory}/{names}"
            client.command(
                f"INSERT INTO {self.table(table)} SETTINGS {_FILE_SETTINGS} "
                f"SELECT * FROM file('{where}', 'JSONEachRow')",
                parameters={"token": token},
            )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self._lock.acquire(timeout=self._lock_timeout):
            raise StoreUnavailable(
                f"the store has been busy for more than {self._lock_timeout:.0f} s (a slow or hung query): "
                "try again in a moment"
            )
        try:
            yield
        finally:
            self._lock.release()

    def _require(self) -> Client | RemoteClient:
        if self._ownership is not None and self.remote and self._ownership.held:
            self._disconnect()  # this process took over from an owner that died: open the store itself
        if self._client is None:
            if self._closed:
                raise StoreUnavailable("the store is closed")
            if self._failed_at is not None and time.monotonic() - self._failed_at < self._retry_after:
                raise StoreUnavailable(
                    f"the store is unavailable (next attempt within {self._retry_after:.0f} s): "
                    f"{self._failure}"
                )
            self._connect()
        assert self._client is not None
        return self._client

    def _connect(self) -> None:
        if self._client is not None:
            return
        ownership = self._ownership
        if ownership is not None and not ownership.try_acquire():
            self._client = RemoteClient(ownership.socket_path)
            return
        try:
            if self.settings.embedded:
                _private_directory(self.settings.dsn)
            client = _new_client(self.settings.dsn)
            self._client = client
            self._create_database(client)
            if self._prepare is not None:
                self._prepare(self)
            if ownership is not None:
                self._server = StoreServer(ownership.socket_path, self._serve)
                self._server.start()
        except Exception as exc:
            if self._client is not None:
                self._client.close()
                self._client = None
            self._failed_at = time.monotonic()
            self._failure = str(exc)
            if isinstance(exc, StoreUnavailable):
                raise
            raise StoreUnavailable(
                f"cannot prepare the store at {_redact(self.settings.dsn)}: {exc}"
            ) from exc
        self._failed_at = None

    def _serve(self, request: dict[str, Any]) -> Any:
        """Another worker's call, run here (in the owner) under the store's lock."""
        with self._locked():
            client = self._require()
            op = request["op"]
            if op == "query":
                return [
                    list(row)
                    for row in client.query(request["sql"], parameters=request["parameters"]).result_rows
                ]
            if op == "command":
                client.command(request["sql"], parameters=request["parameters"])
            elif op == "insert":
                columns = request["columns"]
                client.insert(
                    request["table"], list(columns.values()), column_names=list(columns), column_oriented=True
                )
            elif op == "raw_insert":
                client.raw_insert(request["table"], None, insert_block=request["payload"], fmt="JSONEachRow",
                                  settings=request["settings"])  # fmt: skip
            else:
                raise ValueError(f"unknown request {op!r}")
            return None

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _new_client(dsn: str) -> Client:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        return clickhouse_connect.get_client(dsn=dsn)
    except ClickHouseError as exc:
        if dsn.startswith("chdb:"):
            raise StoreUnavailable(
                f"cannot open the embedded store at {dsn!r}: {exc}. The embedded engine allows one process "
                "per data directory, and another one has it open without sharing it (koekje's own site and "
                "commands share it through the site's spool directory: is this configuration's spool_dir "
                "the site's?): stop that process, then try again."
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


def _private_directory(dsn: str) -> None:
    """The embedded store's files (visitor data, password hashes, the ledger) are for this user only."""
    path = dsn.removeprefix("chdb://")
    if path and path != "memory":
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)


# Deduplicated by the batch's token; times in any ISO form; JSON fields matched to columns by name.
_FILE_SETTINGS = (
    "insert_deduplication_token = {token:String}, date_time_input_format = 'best_effort', "
    "use_structure_from_insertion_table_in_table_functions = 1"
)


def _quoted(text: str) -> str:
    """Text for a single-quoted SQL string and a file() glob: spool paths are koekje's own, but a directory
    name with a quote, brace or comma must not change the statement."""
    for char in "\\'{},*?":
        text = text.replace(char, "\\" + char)
    return text
