"""Several worker processes on one embedded store: one process owns it, the others ask the owner.

chDB allows one process per data directory. The process that holds an exclusive lock on the spool's
``owner.lock`` (``fcntl.flock``: the kernel releases it when the process dies, however it dies) opens the
store, loads the spool, and answers the other processes' queries on a Unix socket next to the lock. Every
other process writes only to the spool, reads through the socket, and keeps trying the lock, so when the
owner dies another worker takes over within a second.

The socket carries length-prefixed MessagePack frames: a request (``command``, ``query``, ``insert``,
``insert_raw``) and its answer (rows, or the error's text). Only the site's own user can reach it: the spool
directory is 0700. Hand-written because no library offers a ClickHouse client over a local socket; the
protocol is the four calls the store makes, nothing more.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec

log = logging.getLogger("koekje.analytics")

_LENGTH = struct.Struct("!I")
MAX_FRAME = 256 << 20  # a dashboard answer or a spooled batch; more is a bug or an attack
_UUID, _NAIVE, _DATE = 1, 2, 3


# An AF_UNIX address holds at most 107 bytes of path; a site's spool may lie deeper than that.
_MAX_SOCKET_PATH = 100


@contextmanager
def socket_address(path: Path) -> Iterator[str]:
    """``path`` as ``bind`` and ``connect`` take it. A path too long for an AF_UNIX address is reached
    through a descriptor of its directory (Linux's ``/proc/self/fd``), open while the address is used."""
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH or not os.path.isdir("/proc/self/fd"):
        yield str(path)  # (elsewhere a long one fails as it is, with the system's own error)
        return
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{directory}/{path.name}"
    finally:
        os.close(directory)


class Ownership:
    """The exclusive lock that makes one process the owner of the store."""

    def __init__(self, directory: Path) -> None:
        self.lock_path = directory / "owner.lock"
        self.socket_path = directory / "owner.sock"
        self._fd: int | None = None
        # Threads of one process (the loader, a caller's flush) ask at once: flock is per open file, so a
        # second descriptor of this process would find the first one's lock and report another owner.
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        with self._lock:
            if self._fd is not None:
                return True
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
            return True

    def release(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)  # closing the descriptor releases the lock
                self._fd = None


# -- the frames -------------------------------------------------------------------------------------------


def _wrap(value: Any) -> Any:
    """Values as they must arrive: msgspec would send UUIDs, naive datetimes and dates as plain strings,
    so they travel as extension types (aware datetimes are MessagePack timestamps already)."""
    if isinstance(value, list | tuple):
        return [_wrap(item) for item in value]
    if isinstance(value, dict):
        return {key: _wrap(item) for key, item in value.items()}
    if isinstance(value, UUID):
        return msgspec.msgpack.Ext(_UUID, value.bytes)
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else msgspec.msgpack.Ext(_NAIVE, value.isoformat().encode())
    if isinstance(value, date):
        return msgspec.msgpack.Ext(_DATE, value.isoformat().encode())
    return value


def _decode_ext(code: int, data: memoryview) -> Any:
    if code == _UUID:
        return UUID(bytes=bytes(data))
    if code == _NAIVE:
        return datetime.fromisoformat(bytes(data).decode())
    if code == _DATE:
        return date.fromisoformat(bytes(data).decode())
    raise ValueError(f"unknown extension {code}")


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ext_hook=_decode_ext)


def _send(sock: socket.socket, message: Any) -> None:
    payload = _encoder.encode(_wrap(message))
    sock.sendall(_LENGTH.pack(len(payload)) + payload)


def _receive(sock: socket.socket) -> Any:
    (length,) = _LENGTH.unpack(_read_exactly(sock, _LENGTH.size))
    if length > MAX_FRAME:
        raise ConnectionError(f"a frame of {length} bytes is more than koekje sends")
    return _decoder.decode(_read_exactly(sock, length))


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(min(n - len(chunks), 1 << 20))
        if not chunk:
            raise ConnectionError("the store's owner closed the connection")
        chunks += chunk
    return bytes(chunks)


# -- the client: what a worker that does not own the store uses ---------------------------------------------


class RemoteError(Exception):
    """The owner ran the request and the store refused it."""


class _Result:
    def __init__(self, rows: list[Any]) -> None:
        self.result_rows = rows


class RemoteClient:
    """The subset of a clickhouse-connect client that koekje's Store uses, answered by the owner."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self._path = path
        self._timeout = timeout
        self._sock: socket.socket | None = None

    def _call(self, request: dict[str, Any]) -> Any:
        for attempt in (1, 2):  # one retry on a fresh connection: the owner may have been replaced
            try:
                sock = self._connect()
                _send(sock, request)
                answer = _receive(sock)
                break
            except TimeoutError:
                # An owner that does not answer (stopped, or stuck) is not asked again: the caller would
                # wait twice, and a request that was only slow would run twice.
                self.close()
                raise
            except OSError:
                self.close()
                if attempt == 2:
                    raise
        if "error" in answer:
            raise RemoteError(answer["error"])
        return answer.get("rows")

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self._timeout)
            try:
                with socket_address(self._path) as address:
                    sock.connect(address)
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self._call({"op": "command", "sql": sql, "parameters": dict(parameters or {})})

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> _Result:
        rows = self._call({"op": "query", "sql": sql, "parameters": dict(parameters or {})})
        return _Result([tuple(row) for row in rows])

    def insert(
        self, table: str, data: Sequence[Any], column_names: Sequence[str], column_oriented: bool
    ) -> None:
        assert column_oriented
        self._call({"op": "insert", "table": table, "columns": dict(zip(column_names, data, strict=True))})

    def raw_insert(
        self, table: str, column_names: None, insert_block: bytes, fmt: str, settings: Mapping[str, Any]
    ) -> None:
        self._call({"op": "raw_insert", "table": table, "payload": insert_block, "settings": dict(settings)})

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# -- the server: the owner answers --------------------------------------------------------------------------

Handler = Callable[[dict[str, Any]], Any]


class StoreServer:
    """Answers other workers' requests on the owner's socket, each connection in a thread of its own."""

    def __init__(self, path: Path, handle: Handler) -> None:
        self._path = path
        self._handle = handle
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._path.unlink(missing_ok=True)  # a dead owner's socket
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with socket_address(self._path) as address:
            listener.bind(address)
        os.chmod(self._path, 0o600)
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="koekje-store-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
            self._path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            while self._listener is not None:
                try:
                    request = _receive(connection)
                except (OSError, ValueError, msgspec.DecodeError):
                    return
                try:
                    answer: dict[str, Any] = {"rows": self._handle(request)}
                except Exception as exc:
                    answer = {"error": str(exc)}
                try:
                    _send(connection, answer)
                except OSError:
                    return
