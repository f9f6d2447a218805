"""A data subject's data: everything stored about one visitor, as a copy, and its erasure.

A visitor is known by their consent cookie: the decision's id (the start of their consent history, walked
back through the ledger) and, while statistics are allowed, their visitor id (their page views and
engagement). Erasure deletes the visitor's rows, blanks the visitor id in their ledger rows (the chain covers
a digest of it, so the proof of consent stays verifiable, now pseudonymous), and checks that nothing is
left. Events of the visitor's that are still on their way (in another worker's write buffer, or in the spool
while the store is down) are caught by an *erasure note* in the spool directory: the loader erases the
visitor's rows again after each load until no batch written before the erasure can still arrive. The note
holds the visitor id, for that purpose only, and goes once it has served it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from . import spreadsheet
from .ledger import visitor_digest
from .store import Store

log = logging.getLogger("koekje.analytics")

# Tables with rows keyed by the visitor id, erased by deleting them.
ERASABLE = ("page_views", "engagement")
LEDGER = "consent_ledger"
# How long an erasure note lives at least: longer than any write buffer holds an event before the spool.
NOTE_MIN_AGE = 600.0
MAX_HISTORY = 1000  # decisions walked back through the ledger, at most


def reference(consent_id: UUID) -> str:
    """The short reference a visitor quotes in a letter or e-mail about their data: the first 48 bits of
    their (random, unguessable) consent id, in three groups of hex digits."""
    digits = consent_id.hex[:12].upper()
    return f"{digits[:4]}-{digits[4:8]}-{digits[8:]}"


def find_reference(store: Store, text: str) -> tuple[UUID, UUID | None] | None:
    """The decision a reference names (its consent id) and the visitor id under it; None when no decision,
    or more than one, has it."""
    digits = "".join(text.replace("-", "").split()).lower()  # "3FA8-EAEB-0067", "3fa8 eaeb 0067"
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        return None
    rows = store.query(
        f"SELECT consent_id, visitor_id, visitor_digest, hash FROM {store.table(LEDGER)} "
        "WHERE startsWith(replaceAll(toString(consent_id), '-', ''), {p:String}) LIMIT 2",
        {"p": digits},
    )
    if len(rows) != 1:
        return None
    consent_id, visitor_id, digest, row_hash = rows[0]
    row = {"consent_id": consent_id, "visitor_id": visitor_id, "visitor_digest": digest, "hash": row_hash}
    genuine = _genuine(row)
    return consent_id, visitor_id if genuine else None


class ErasureIncomplete(Exception):
    """Rows of the visitor were still there after the erasure (the store is down, or refused)."""


class Subjects:
    def __init__(
        self,
        store: Store,
        spool_root: Path,
        *,
        keep_seconds: float = NOTE_MIN_AGE,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._notes = spool_root / "erasures"
        # A note lives as long as the erased visitor's old cookie could (the consent lifetime): while it
        # does, every worker refuses that visitor id (``erased``), whatever cookie still carries it.
        self._keep = max(keep_seconds, NOTE_MIN_AGE)
        self._wall = wall
        self._columns: dict[str, list[str]] = {}
        self.erased: frozenset[UUID] = frozenset()  # this process's view of the notes (``refresh``)
        self._refreshed = 0.0

    # -- access and a copy ---------------------------------------------------------------------------------

    def export(self, visitor_id: UUID | None, consent_id: UUID | None) -> dict[str, list[dict[str, Any]]]:
        """Every row about the visitor, per table: their consent history, and the page views and engagement
        of every visitor id they had (withdrawing statistics and granting them again makes a new one)."""
        history = self._history(visitor_id, consent_id)
        ids = _ids(visitor_id, history)
        data: dict[str, list[dict[str, Any]]] = {LEDGER: history}
        for table in ERASABLE:
            data[table] = [row for v in sorted(ids, key=str) for row in self._rows(table, v)]
        return data

    def export_parts(
        self, visitor_id: UUID | None, consent_id: UUID | None
    ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """``export`` a part at a time, for a response that streams: (table, rows), the consent history
        first, then each visitor id's rows month by month (a long history never sits in memory whole)."""
        history = self._history(visitor_id, consent_id)
        yield LEDGER, history
        ids = sorted(_ids(visitor_id, history), key=str)
        for table in ERASABLE:
            yield table, []  # the table is there even when empty
            for v in ids:
                months = self._store.query(
                    f"SELECT DISTINCT toYYYYMM(ts) AS m FROM {self._store.table(table)} "
                    "WHERE visitor_id = {v:UUID} ORDER BY m",
                    {"v": v},
                )
                for (month,) in months:
                    yield table, self._rows(table, v, int(month))

    def visitor_ids(self, visitor_id: UUID | None, consent_id: UUID | None) -> set[UUID]:
        """Every visitor id the visitor had, along their consent history."""
        return _ids(visitor_id, self._history(visitor_id, consent_id))

    def _rows(self, table: str, visitor_id: UUID, month: int | None = None) -> list[dict[str, Any]]:
        columns = self._columns_of(table)
        rows = self._store.query(
            f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM {self._store.table(table)} "
            "WHERE visitor_id = {v:UUID} AND ({m:UInt32} = 0 OR toYYYYMM(ts) = {m:UInt32}) ORDER BY ts",
            {"v": visitor_id, "m": month or 0},
        )
        return [dict(zip(columns, map(_plain, row), strict=True)) for row in rows]

    def _history(self, visitor_id: UUID | None, consent_id: UUID | None) -> list[dict[str, Any]]:
        """The visitor's decisions: those under their visitor id, the chain of decisions back from the one
        named (a refusal has no visitor id), and every decision made after any of those (a reference quoted
        from an earlier decision: the visitor changed their mind after writing, within the month the
        request may take; found when tried as an officer would, such an erasure left the later visitor id's
        page views and was logged as done)."""
        columns = self._columns_of(LEDGER)
        select = f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM {self._store.table(LEDGER)} "
        found: dict[str, dict[str, Any]] = {}
        if visitor_id is not None:
            for row in self._store.query(select + "WHERE visitor_id = {v:UUID}", {"v": visitor_id}):
                record = dict(zip(columns, map(_plain, row), strict=True))
                if _genuine(record):  # (not another visitor's decision given this id)
                    found[record["consent_id"]] = record
        wanted = consent_id
        for _ in range(MAX_HISTORY):
            if wanted is None:
                break
            known = found.get(str(wanted))
            if known is None:
                rows = self._store.query(select + "WHERE consent_id = {c:UUID} LIMIT 1", {"c": wanted})
                if not rows:
                    break
                known = found[str(wanted)] = dict(zip(columns, map(_plain, rows[0]), strict=True))
            previous = known.get("previous_id")
            wanted = UUID(previous) if previous else None
        later = set(found)
        while later and len(found) < MAX_HISTORY:
            rows = self._store.query(
                select + "WHERE previous_id IN {p:Array(UUID)}", {"p": [UUID(c) for c in later]}
            )
            records = [dict(zip(columns, map(_plain, row), strict=True)) for row in rows]
            later = {r["consent_id"] for r in records} - set(found)
            found.update((r["consent_id"], r) for r in records if r["consent_id"] in later)
        return sorted(found.values(), key=lambda r: (r["ts"], r["consent_id"]))

    def _columns_of(self, table: str) -> list[str]:
        if table not in self._columns:
            described = self._store.query(f"DESCRIBE TABLE {self._store.table(table)}")
            self._columns[table] = [row[0] for row in described]
        return self._columns[table]

    # -- erasure -------------------------------------------------------------------------------------------

    def erase(self, visitor_ids: set[UUID], flush: Callable[[], bool]) -> dict[str, int]:
        """Erase the rows of every one of the visitor's ids, checked; how many rows each table held.
        ``flush`` first brings this process's waiting events into the store. Raises ErasureIncomplete
        when rows are left."""
        # Counted before the note too: once it is there, the loader (in whichever process owns the store)
        # may erase the rows before this counts them, and the answer said none were held (found by a chaos
        # test). What the flush brings in is counted after.
        before = {visitor_id: self._count(visitor_id) for visitor_id in visitor_ids}
        for visitor_id in visitor_ids:
            self._note(visitor_id)  # first: whatever arrives later is refused, or erased on arrival
        flush()
        counted = dict.fromkeys((*ERASABLE, LEDGER), 0)
        for visitor_id in visitor_ids:
            for table, n in self._count(visitor_id).items():
                counted[table] += max(n, before[visitor_id][table])
            for _ in range(3):  # rows the loader brings in meanwhile (late events) go in the next round
                self._erase_rows(visitor_id)
                left = self._count(visitor_id)
                if not any(left.values()):
                    break
            else:
                raise ErasureIncomplete(f"rows left after erasure: {left}")
        return counted if visitor_ids else {}

    def _count(self, visitor_id: UUID) -> dict[str, int]:
        counts = {}
        for table in (*ERASABLE, LEDGER):
            [(n,)] = self._store.query(
                f"SELECT count() FROM {self._store.table(table)} WHERE visitor_id = {{v:UUID}}",
                {"v": visitor_id},
            )
            counts[table] = int(n)
        return counts

    def _erase_rows(self, visitor_id: UUID) -> None:
        # First the days those page views were on: the dashboard's raw-row reports leave them out, or their
        # difference from the statistics (which keep counting this visitor, anonymously) would be them.
        views = self._store.table("page_views")
        self._store.command(
            f"INSERT INTO {self._store.table('erased_days')} (site, day) "
            f"SELECT DISTINCT site, toDate(ts, '{self._store.settings.timezone}') FROM {views} "
            "WHERE visitor_id = {v:UUID}",
            {"v": visitor_id},
        )
        # The mutations name the id by its SHA-256 only: ClickHouse keeps the text of finished mutations
        # (the last 100 per table, on disk or in Keeper), and an id there would outlive the erasure (found
        # by a helper). A hash of a random id is no way back to it.
        hashed = hashlib.sha256(str(visitor_id).encode()).hexdigest()
        for table in (*ERASABLE, LEDGER):
            # Only the days that hold the id's rows (a mutation that names days reads only their parts,
            # and a table without the id's rows needs none: found by a review, the hash alone made every
            # erasure read whole tables). The days name nobody.
            days = self._store.query(
                f"SELECT DISTINCT toDate(ts) FROM {self._store.table(table)} WHERE visitor_id = {{v:UUID}}",
                {"v": visitor_id},
            )
            if not days:
                continue
            change = "UPDATE visitor_id = NULL" if table == LEDGER else "DELETE"
            self._store.command(
                f"ALTER TABLE {self._store.table(table)} {change} "
                f"WHERE toDate(ts) IN {{days:Array(Date)}} AND {_BY_HASH} SETTINGS mutations_sync = 2",
                {"days": [day for (day,) in days], "h": hashed},
            )

    def refresh(self, every: float = 1.0) -> None:
        """Read the notes again (at most once per ``every`` seconds): the erased visitor ids to refuse."""
        now = self._wall()
        if now - self._refreshed >= every:
            self._refreshed = now
            self.erased = frozenset(visitor_id for visitor_id, _ in self.notes())

    def _note(self, visitor_id: UUID) -> None:
        self._notes.mkdir(mode=0o700, exist_ok=True)
        self.erased = self.erased | {visitor_id}
        path = self._notes / visitor_id.hex
        temporary = self._notes / f".{os.getpid()}.{uuid.uuid4().hex}.tmp"  # several erasures at once
        with open(temporary, "w") as file:
            json.dump({"visitor_id": str(visitor_id), "at": self._wall()}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)

    def notes(self) -> list[tuple[UUID, float]]:
        """The erasures whose late events may still arrive: (visitor id, when)."""
        found = []
        for path in self._notes.glob("*") if self._notes.exists() else ():
            if path.suffix == ".tmp" or path.name.startswith("."):
                continue
            try:
                note = json.loads(path.read_text())
                found.append((UUID(note["visitor_id"]), float(note["at"])))
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("koekje: an unreadable erasure note %s is left alone", path.name)
        return found

    def after_load(self, oldest_waiting: float | None) -> None:
        """The loader's hook, after a pass that loaded rows: erase again what erased visitors' late events
        brought, and drop the notes no batch can still answer (old enough, and nothing older waits)."""
        now = self._wall()
        unsettled = []
        for visitor_id, at in self.notes():
            if now - at <= NOTE_MIN_AGE or (oldest_waiting is not None and oldest_waiting <= at):
                unsettled.append(visitor_id)
            elif now - at > self._keep:
                (self._notes / visitor_id.hex).unlink(missing_ok=True)
        # A mutation rewrites parts: only for the ids whose late events did arrive (one query finds them).
        for visitor_id in self._holding(unsettled):
            self._erase_rows(visitor_id)

    def _holding(self, visitor_ids: list[UUID]) -> set[UUID]:
        """Which of ``visitor_ids`` some table still holds rows of."""
        if not visitor_ids:
            return set()
        union = " UNION ALL ".join(
            f"SELECT visitor_id FROM {self._store.table(table)} WHERE visitor_id IN {{ids:Array(UUID)}}"
            for table in (*ERASABLE, LEDGER)
        )
        return {
            row[0]
            for row in self._store.query(f"SELECT DISTINCT visitor_id FROM ({union})", {"ids": visitor_ids})
        }


# A row of one visitor id, named by the SHA-256 of its text form (see Subjects._erase_rows). (A NULL id
# hashes to NULL: no match.)
_BY_HASH = "SHA256(toString(visitor_id)) = unhex({h:String})"


def _ids(visitor_id: UUID | None, history: list[dict[str, Any]]) -> set[UUID]:
    ids = {UUID(row["visitor_id"]) for row in history if row.get("visitor_id") and _genuine(row)}
    return ids | ({visitor_id} if visitor_id is not None else set())


def _genuine(row: dict[str, Any]) -> bool:
    """Whether a ledger row's visitor id is the one its chain covers (the digest), or it has none. Found by
    a helper: a visitor id written into another visitor's decision made that reference's copy and erasure
    take in the other visitor's data. (A row of koekje 0.1 has no digest: its id is taken as it is.)"""
    visitor_id, digest = row.get("visitor_id"), row.get("visitor_digest")
    if not visitor_id:
        return True
    if not digest:
        return not row.get("hash")  # a chained row always has its digest
    return bool(visitor_digest(UUID(str(row["consent_id"])), UUID(str(visitor_id))) == digest)


def _plain(value: Any) -> Any:
    """A stored value as JSON and CSV can hold it."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        # Every time koekje stores is UTC, and a copy says so (found by a helper: "2026-12-07T23:29:40",
        # in no zone a reader could tell).
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def as_csv_zip(data: dict[str, list[dict[str, Any]]]) -> bytes:
    """The export as a zip of one CSV per table (lists joined with ``|``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for table, rows in data.items():
            text = io.StringIO()
            columns = list(rows[0]) if rows else []
            writer = csv.DictWriter(text, fieldnames=columns, quoting=spreadsheet.QUOTING)
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
            archive.writestr(f"{table}.csv", text.getvalue())
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    return spreadsheet.cell("|".join(map(str, value)) if isinstance(value, list) else value)
