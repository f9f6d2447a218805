"""The spool: a directory of batches on their way to the store, so that nothing accepted is lost.

Every batch koekje writes (page views, consent decisions, cookie sightings) is first a file here: written
under a temporary name, fsynced, renamed into place, and the directory fsynced, so a batch either exists
whole or not at all, also after a crash or a power cut. The loader moves batches into the store in order
and removes each once it is there; a batch id (its file name) makes a second load of the same batch a no-op.

The spool is bounded (``max_bytes``): beyond it a batch is refused and the caller counts the loss.
Several processes may write to one spool directory (each under its own writer name); file names sort in
the order the batches were made.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import stat
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".jsonl"
TEMP_SUFFIX = ".tmp"
# What ``write`` names a batch: <made, ns>-<writer>-<seq>-<rows>.jsonl. Anything else in a table's directory
# is not koekje's batch (a stray or planted file): never loaded, moved aside by the loader (``strays``).
# (Development versions before the row count was in the name wrote <made>-<writer>-<seq>.jsonl: still read.)
BATCH_NAME = re.compile(r"\d{20}-[^-/]+-\d{10}(?:-(\d+))?\.jsonl")
# A temporary file this old is a crashed writer's leftover. Younger ones may be a live process's batch being
# written right now (several workers share the directory, and a new one starts whenever one is replaced):
# removing those lost that writer's batch (found under gunicorn). A write takes seconds at most.
LEFTOVER_SECONDS = 3600
# A group manifest's name starts so (the loader's: which batches go in as one insert); never a batch.
GROUP_PREFIX = ".group-"
REJECTED = "rejected"  # the directory files the loader set aside go to


class SpoolFull(Exception):
    """The spool holds its maximum; the batch was not kept."""


@dataclass(frozen=True, slots=True, order=True)
class Batch:
    """One spooled batch: ``<table>/<made, ns>-<writer>-<seq>-<rows>.jsonl``, one JSON row per line."""

    name: str  # sorts in the order batches were made; also the batch id
    table: str
    path: Path

    @property
    def id(self) -> str:
        return self.name.removesuffix(SUFFIX)

    @property
    def rows(self) -> int:
        """How many rows the batch holds (written into its name, so nobody has to count them again; 0 when
        its name does not say)."""
        found = BATCH_NAME.fullmatch(self.name)
        return int(found[1]) if found and found[1] else 0

    def read(self) -> bytes:
        return self.path.read_bytes()


class Spool:
    def __init__(self, root: Path, *, max_bytes: int = 1 << 30, writer: str | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        # Unique per process start: two processes (or one restarted) never write the same name.
        self.writer = writer or f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
        if "-" in self.writer or "/" in self.writer:
            raise ValueError(f"a spool writer's name has no '-' or '/': {self.writer!r}")
        self._seq = itertools.count()
        self._lock = threading.Lock()  # the size estimate is shared by this process's writers
        self._bytes: int | None = None
        self._counted_at = 0.0

    def open(self) -> None:
        """Create the directory (0700: spooled rows are visitor data) and remove crashed writers' half-written
        leftovers. A directory that is a symbolic link, or belongs to another user, is refused."""
        check_path(self.root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(self.root)
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
            raise ValueError(
                f"the spool directory {self.root} is a symbolic link or belongs to another user: "
                "point analytics.spool_dir at a directory of the site's own"
            )
        os.chmod(self.root, 0o700)
        self.sweep()

    def sweep(self) -> int:
        """Remove crashed writers' half-written batches (visitor data too: they must not outlive their
        retention in a process that runs for months); how many were removed."""
        stale = time.time() - LEFTOVER_SECONDS
        removed = 0
        for leftover in self.root.glob(f"*/*{TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):  # renamed or removed by its writer meanwhile
                if leftover.stat().st_mtime < stale:
                    leftover.unlink()
                    removed += 1
        return removed

    # -- writing ------------------------------------------------------------------------------------------

    def write(self, table: str, payload: bytes, *, rows: int = 0, sync: bool = True) -> Batch:
        """Keep one batch; with ``sync`` (the default) it is on disk when this returns. Raises SpoolFull when
        the spool holds ``max_bytes`` already, OSError when the disk refuses."""
        with self._lock:
            size = self._size()
            if size + len(payload) > self.max_bytes:
                raise SpoolFull(f"the spool holds {size} bytes, its maximum is {self.max_bytes}")
            self._bytes = size + len(payload)
        directory = self.root / table
        directory.mkdir(mode=0o700, exist_ok=True)
        name = f"{time.time_ns():020d}-{self.writer}-{next(self._seq):010d}-{rows}{SUFFIX}"
        final = directory / name
        temporary = directory / (name + TEMP_SUFFIX)
        try:
            with open(temporary, "wb") as file:
                file.write(payload)
                if sync:
                    file.flush()
                    os.fsync(file.fileno())
            os.rename(temporary, final)
            if sync:
                _sync_directory(directory)
        except OSError:
            temporary.unlink(missing_ok=True)
            with self._lock:
                self._bytes = None  # recount next time
            raise
        return Batch(name, table, final)

    # -- reading ------------------------------------------------------------------------------------------

    def pending(self, table: str) -> list[Batch]:
        """The batches of ``table`` waiting for the store, oldest first: files named as ``write`` names them
        (a symbolic link is none: the store would read what it points to)."""
        directory = self.root / table
        try:
            names = sorted(entry.name for entry in os.scandir(directory) if _is_batch(entry))
        except FileNotFoundError:
            return []
        return [Batch(name, table, directory / name) for name in names]

    def expire_rejected(self, max_age_seconds: float) -> int:
        """Remove what was set aside longer ago than ``max_age_seconds`` after it was written (rows of
        visitor data expire there too); how many files were removed."""
        oldest = time.time() - max_age_seconds
        removed = 0
        for path in self.rejected():
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                if path.lstat().st_mtime < oldest:
                    path.unlink()
                    removed += 1
        return removed

    def set_aside(self, table: str, path: Path) -> None:
        """Move a file of ``table``'s out of the loader's way into ``rejected/``, under a name of its own
        there (nothing set aside before is replaced). Raises OSError when it cannot be moved."""
        rejected = self.root / REJECTED
        rejected.mkdir(mode=0o700, exist_ok=True)
        path.rename(rejected / f"{table}-{path.name}-{uuid.uuid4().hex[:8]}")

    def rejected(self) -> list[Path]:
        """What the loader set aside (``rejected/``): malformed batches, and files that were none."""
        try:
            return sorted(Path(entry.path) for entry in os.scandir(self.root / REJECTED))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def strays(self, table: str) -> list[Path]:
        """Files in ``table``'s directory that are no batch, no group manifest and no batch being written."""
        directory = self.root / table
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return []
        return sorted(
            directory / entry.name
            for entry in entries
            if not entry.name.endswith(TEMP_SUFFIX)
            and not entry.name.startswith(GROUP_PREFIX)
            and not _is_batch(entry)
        )

    def wait_loaded(self, timeout: float) -> bool:
        """Wait until no batch of this process's is left (another process loads them); True when none is."""
        deadline = time.monotonic() + timeout
        mine = f"-{self.writer}-"  # (a writer name has no "-": pid.random)
        while any(mine in batch.name for table in self.tables() for batch in self.pending(table)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)  # another process's progress: nothing to wait on but the directory
        return True

    def tables(self) -> list[str]:
        try:
            return sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        except FileNotFoundError:
            return []

    def remove(self, batch: Batch) -> None:
        """The batch is in the store: forget it (durably, so it is not loaded again after a crash)."""
        try:
            size = batch.path.stat().st_size
            batch.path.unlink()
        except FileNotFoundError:
            return
        _sync_directory(batch.path.parent)
        with self._lock:
            if self._bytes is not None:
                self._bytes = max(0, self._bytes - size)

    def size(self) -> int:
        """Bytes waiting in the spool (all writers)."""
        with self._lock:
            self._bytes = None
            return self._size()

    def _size(self) -> int:
        # Other processes write here too: count again now and then.
        if self._bytes is None or time.monotonic() - self._counted_at > 5:
            self._counted_at = time.monotonic()
            total = 0
            for table in self.tables():
                for batch in self.pending(table):
                    with contextlib.suppress(FileNotFoundError):  # loaded meanwhile
                        total += batch.path.stat().st_size
            self._bytes = total
        return self._bytes


def _is_batch(entry: os.DirEntry[str]) -> bool:
    """A file named as ``write`` names batches (a symbolic link is none: the store would read its target)."""
    return BATCH_NAME.fullmatch(entry.name) is not None and entry.is_file(follow_symlinks=False)


# ClickHouse reads spooled files by path and takes these characters as a pattern, escaped or not.
GLOB_CHARACTERS = frozenset("{}*?,")


def check_path(root: Path) -> None:
    """A spool directory's path must be read literally by the store."""
    found = sorted(GLOB_CHARACTERS & set(str(root)))
    if found:
        raise ValueError(
            f"analytics.spool_dir {str(root)!r} contains {''.join(found)!r}: the store would read the path "
            "as a pattern; choose a directory without these characters"
        )


def _sync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
