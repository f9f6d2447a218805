"""The consent ledger as a hash chain, on a real chDB store: whole when untouched, and every edit, deletion
or insertion found by ``verify``."""

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import FakeClock

from koekje.analytics import Store
from koekje.analytics.ledger import (
    COLUMNS,
    ConsentRecord,
    Head,
    LedgerRow,
    Method,
    _row_from,
    history,
    insert_rows,
    row_hash,
    shown_texts,
    verify,
)
from koekje.analytics.ledger_writer import LedgerWriter
from koekje.analytics.loader import Loader
from koekje.analytics.spool import Spool, SpoolFull
from koekje.analytics.subjects import Subjects, find_reference, reference

RETENTION = timedelta(days=1095)


def record(clock: FakeClock, previous: uuid.UUID | None = None, **changes: object) -> ConsentRecord:
    fields: dict[str, object] = {
        "consent_id": uuid.uuid4(),
        "previous_id": previous,
        "ts": clock(),
        "visitor_id": uuid.uuid4(),
        "categories": ("analytics", "necessary"),
        "services": (),
        "policy_revision": 1,
        "lang": "nl",
        "method": Method.BANNER,
        "texts_hash": "",
        "country": "NL",
        "ip_prefix": "203.0.113.0",
        "gpc": False,
    }
    fields.update(changes)
    return ConsentRecord(**fields)  # type: ignore[arg-type]


class Pipeline:
    """A ledger writer and the loader behind it, on their own spool: what a process runs."""

    def __init__(self, store: Store, clock: FakeClock, spool: Path, **writer: Any) -> None:
        self.spool = Spool(spool)
        self.spool.open()
        self.writer = LedgerWriter(store, self.spool, clock, lookback=timedelta(days=365), **writer)
        self.loader = Loader(store, self.spool, "site", clock)
        self.writer.start()

    def load(self) -> None:
        assert self.writer.flush()
        assert self.loader.flush()

    def stop(self) -> None:
        self.writer.stop()


@pytest.fixture
def writer(store: Store, clock: FakeClock, tmp_path: Path) -> Iterator[Pipeline]:
    pipeline = Pipeline(store, clock, tmp_path / "spool")
    yield pipeline
    pipeline.stop()


def write(pipeline: Pipeline, clock: FakeClock, n: int) -> list[ConsentRecord]:
    records = []
    for _ in range(n):
        clock.advance(seconds=1)
        records.append(record(clock))
        pipeline.writer.submit(records[-1], wait=False)
    pipeline.load()
    return records


def check(store: Store, clock: FakeClock, recorded: list[Head] | None = None) -> list[str]:
    return [b.problem for b in verify(store, "site", clock(), RETENTION, recorded or []).breaks]


def command(store: Store, sql: str) -> None:
    store.command(sql.replace("LEDGER", store.table("consent_ledger")) + " SETTINGS mutations_sync = 2")


def test_an_untouched_ledger_is_whole(store: Store, writer: Pipeline, clock: FakeClock) -> None:
    write(writer, clock, 5)
    result = verify(store, "site", clock(), RETENTION)
    assert result.ok and result.rows == 5 and result.chains == 1
    [head] = result.heads
    assert head.seq == 4


def test_an_edited_row_is_found(store: Store, writer: Pipeline, clock: FakeClock) -> None:
    records = write(writer, clock, 4)
    command(store, f"ALTER TABLE LEDGER UPDATE categories = ['analytics', 'marketing', 'necessary'] "
            f"WHERE consent_id = '{records[2].consent_id}'")  # fmt: skip
    assert check(store, clock) == ["the row does not match its hash (edited?)"]


def test_a_deleted_row_is_found(store: Store, writer: Pipeline, clock: FakeClock) -> None:
    records = write(writer, clock, 4)
    command(store, f"DELETE FROM LEDGER WHERE consent_id = '{records[1].consent_id}'")
    assert check(store, clock) == ["rows 1-1 before this one are missing (deleted?)"]


def test_a_deleted_first_row_is_found(store: Store, writer: Pipeline, clock: FakeClock) -> None:
    records = write(writer, clock, 3)
    command(store, f"DELETE FROM LEDGER WHERE consent_id = '{records[0].consent_id}'")
    assert check(store, clock) == ["rows 0-0 of this chain are missing (deleted?)"]


def test_inserted_rows_are_found(store: Store, writer: Pipeline, clock: FakeClock) -> None:
    write(writer, clock, 3)
    # A copy of row 1 with another consent id, hash recomputed: it claims a place that is taken.
    columns = ", ".join(COLUMNS)
    copied = columns.replace("consent_id", "generateUUIDv4()", 1)
    command(store, f"INSERT INTO LEDGER ({columns}) SELECT {copied} FROM LEDGER WHERE seq = 1")
    assert "two rows claim this place in the chain (inserted?)" in check(store, clock)


def test_a_forged_chain_that_starts_from_nothing_is_found(
    store: Store, writer: Pipeline, clock: FakeClock
) -> None:
    write(writer, clock, 2)
    forger = Loader(store, writer.spool, "site", clock)
    forger._chain._anchor = forger._chain._head = ("0" * 64, clock())  # pretend the ledger was empty
    writer.writer.submit(record(clock), wait=False)
    assert writer.writer.flush() and forger.flush()
    assert check(store, clock) == ["a second chain that starts from nothing (inserted?)"]


def test_a_new_writer_anchors_to_the_newest_row(store: Store, writer: Pipeline, clock: FakeClock) -> None:
    write(writer, clock, 2)
    writer.loader = Loader(store, writer.spool, "site", clock)  # another loader: a new chain
    write(writer, clock, 2)
    result = verify(store, "site", clock(), RETENTION)
    assert result.ok and result.chains == 2
    command(store, "DELETE FROM LEDGER WHERE seq = 1 AND chain = "
            "(SELECT chain FROM LEDGER ORDER BY ts LIMIT 1)")  # fmt: skip
    assert "anchored to a row that is not in the ledger (deleted?)" in check(store, clock)


def test_a_rewrite_with_recomputed_hashes_is_caught_by_recorded_heads(
    store: Store, writer: Pipeline, clock: FakeClock
) -> None:
    records = write(writer, clock, 3)
    recorded = verify(store, "site", clock(), RETENTION).heads
    # Someone with write access edits row 1 and recomputes every hash after it.
    rows = _rows(store)
    tampered = [rows[0]]
    for row in rows[1:]:
        edited = replace(row.record, categories=("necessary",)) if row.seq == 1 else row.record
        tampered.append(replace(row, record=edited, prev_hash=tampered[-1].hash).sealed())
    command(store, "DELETE FROM LEDGER WHERE seq >= 1")
    insert_rows(store, tampered[1:])
    assert check(store, clock) == []  # the chain alone cannot tell
    assert check(store, clock, recorded) == ["a head recorded earlier has changed (rewritten?)"]
    assert records  # the writer's rows are the ones rewritten


def test_rows_that_expired_leave_a_whole_chain(store: Store, writer: Pipeline, clock: FakeClock) -> None:
    write(writer, clock, 2)
    clock.advance(days=400)
    write(writer, clock, 2)
    command(store, "DELETE FROM LEDGER WHERE seq = 0")  # as the TTL does, later
    later = FakeClock(clock() + RETENTION - timedelta(days=200))
    assert check(store, later) == []  # row 0 was due: row 1 says when it was made
    command(store, "DELETE FROM LEDGER WHERE seq = 2")  # row 2 was not due
    assert check(store, later) == ["rows 2-2 before this one are missing (deleted?)"]


def test_blanking_the_visitor_id_keeps_the_proof(store: Store, writer: Pipeline, clock: FakeClock) -> None:
    records = write(writer, clock, 2)
    command(
        store, f"ALTER TABLE LEDGER UPDATE visitor_id = NULL WHERE consent_id = '{records[0].consent_id}'"
    )
    assert check(store, clock) == []
    assert store.query(f"SELECT countIf(visitor_id IS NULL) FROM {store.table('consent_ledger')}") == [(1,)]


def test_another_visitors_id_written_into_a_decision_is_found(
    store: Store, writer: Pipeline, clock: FakeClock
) -> None:
    """Found by a helper: the chain covers the visitor id only by a digest, which verify did not check; a
    decision given another visitor's id verified, and its reference copied and erased their data."""
    records = write(writer, clock, 2)
    command(store, f"ALTER TABLE LEDGER UPDATE visitor_id = '{records[1].visitor_id}' "
            f"WHERE consent_id = '{records[0].consent_id}'")  # fmt: skip
    assert check(store, clock) == ["its visitor id is not the one the chain covers (changed?)"]
    # ... and a request under that decision's reference takes in no id but the visitor's own (none left).
    assert find_reference(store, reference(records[0].consent_id)) == (records[0].consent_id, None)
    subjects = Subjects(store, writer.spool.root)
    assert subjects.visitor_ids(None, records[0].consent_id) == set()
    assert subjects.visitor_ids(None, records[1].consent_id) == {records[1].visitor_id}


def test_the_texts_a_visitor_was_shown_are_checked_against_their_hash(
    store: Store, writer: Pipeline, clock: FakeClock
) -> None:
    """Found by a helper: the stored banner texts could be edited (or deleted) and the ledger verified."""
    body = '{"title":"Uw keuze over cookies"}'
    digest = hashlib.sha256(body.encode()).hexdigest()
    writer.writer.register_texts(digest, "nl", body)
    for _ in range(2):
        clock.advance(seconds=1)
        writer.writer.submit(record(clock, texts_hash=digest), wait=False)
    writer.load()
    assert check(store, clock) == []
    texts = store.table("consent_texts")
    store.command(f"ALTER TABLE {texts} UPDATE body = '{{\"title\":\"Niets\"}}' WHERE 1 "
                  "SETTINGS mutations_sync = 2")  # fmt: skip
    edited = "the texts it says the visitor was shown do not match their hash (edited?)"
    assert check(store, clock) == [edited]
    store.command(f"DELETE FROM {texts} WHERE 1 SETTINGS mutations_sync = 2")
    assert check(store, clock) == ["the texts it says the visitor was shown are not stored (deleted?)"]


def test_decisions_that_arrive_together_share_an_insert(
    store: Store, writer: Pipeline, clock: FakeClock
) -> None:
    futures = [writer.writer.submit(record(clock), wait=True) for _ in range(300)]
    for future in futures:
        assert future is not None
        future.result(timeout=30)
    assert writer.writer.written == 300
    assert writer.writer.groups <= 10  # 300 fsyncs would be 300 groups
    writer.load()
    assert verify(store, "site", clock(), RETENTION).ok


def test_when_the_spool_cannot_keep_them_waiters_fail_and_the_rest_is_counted(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    pipeline = Pipeline(store, clock, tmp_path / "spool")
    pipeline.spool.max_bytes = 10  # full
    waited = pipeline.writer.submit(record(clock), wait=True)
    pipeline.writer.submit(record(clock), wait=False)
    assert pipeline.writer.flush()
    assert waited is not None and isinstance(waited.exception(), SpoolFull)
    assert pipeline.writer.dropped["ledger_spool_error"] == 1
    pipeline.stop()


def test_decisions_are_durable_while_the_store_is_down_and_loaded_later(
    store: Store, writer: Pipeline, clock: FakeClock
) -> None:
    store.close()  # the store goes away
    future = writer.writer.submit(record(clock), wait=True)
    assert future is not None and future.result(timeout=30) is None  # durable: in the spool
    assert not writer.loader.flush()  # nothing can be loaded
    assert len(writer.spool.pending("consent_ledger")) == 1
    store.open()
    assert writer.loader.flush()
    assert verify(store, "site", clock(), RETENTION).rows == 1
    assert writer.spool.pending("consent_ledger") == []


def test_texts_are_stored_once_per_hash(store: Store, clock: FakeClock, tmp_path: Path) -> None:
    for _ in range(2):  # two processes that show the same texts
        pipeline = Pipeline(store, clock, tmp_path / "spool")
        pipeline.writer.register_texts("h1", "nl", '{"title":"Uw keuze"}')
        pipeline.writer.submit(record(clock, texts_hash="h1"), wait=False)
        pipeline.load()
        pipeline.stop()
    assert store.query(f"SELECT count() FROM {store.table('consent_texts')} FINAL") == [(1,)]
    assert shown_texts(store, "h1") == ("nl", '{"title":"Uw keuze"}')


def test_history_follows_the_links_both_ways(store: Store, writer: Pipeline, clock: FakeClock) -> None:
    first = record(clock)
    clock.advance(minutes=1)
    second = record(clock, previous=first.consent_id, method=Method.SETTINGS)
    clock.advance(minutes=1)
    third = record(clock, previous=second.consent_id, categories=("necessary",))
    for r in (first, second, third, record(clock)):
        writer.writer.submit(r, wait=False)
    writer.load()
    entries = history(store, second.consent_id)
    assert [e.consent_id for e in entries] == [first.consent_id, second.consent_id, third.consent_id]
    assert entries[2].categories == ("necessary",)
    assert history(store, uuid.uuid4()) == []


def test_superseded_ids_reach_the_callback(store: Store, clock: FakeClock, tmp_path: Path) -> None:
    seen: list[uuid.UUID] = []
    pipeline = Pipeline(store, clock, tmp_path / "a", on_superseded=lambda r: seen.extend(i for i, _ in r))
    old = record(clock)
    pipeline.writer.submit(old, wait=False)
    pipeline.writer.submit(record(clock, previous=old.consent_id), wait=False)
    pipeline.load()
    pipeline.stop()
    assert old.consent_id in seen
    # Another process learns it from the store.
    other: list[uuid.UUID] = []
    reader = Pipeline(store, clock, tmp_path / "b", on_superseded=lambda r: other.extend(i for i, _ in r))
    reader.writer.poll()
    reader.stop()
    assert set(other) == {old.consent_id}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    victim=st.integers(0, 5),
    tamper=st.sampled_from(["edit-prev-ts", "edit-method", "edit-ip", "delete", "duplicate"]),
)
def test_any_single_tampering_is_found(
    store: Store, clock: FakeClock, tmp_path_factory: pytest.TempPathFactory, victim: int, tamper: str
) -> None:
    store.command(f"TRUNCATE TABLE {store.table('consent_ledger')}")
    pipeline = Pipeline(store, clock, tmp_path_factory.mktemp("spool"))
    write(pipeline, clock, 6)
    pipeline.stop()
    where = f"seq = {victim}"
    if tamper == "edit-prev-ts":
        command(store, f"ALTER TABLE LEDGER UPDATE prev_ts = prev_ts - INTERVAL 1 SECOND WHERE {where}")
    elif tamper == "edit-method":
        command(store, f"ALTER TABLE LEDGER UPDATE method = 'api' WHERE {where}")
    elif tamper == "edit-ip":
        command(store, f"ALTER TABLE LEDGER UPDATE ip_prefix = '198.51.100.0' WHERE {where}")
    elif tamper == "delete":
        command(store, f"DELETE FROM LEDGER WHERE {where}")
    else:
        columns = ", ".join(COLUMNS)
        command(store, f"INSERT INTO LEDGER ({columns}) SELECT {columns} FROM LEDGER WHERE {where}")
    problems = check(store, clock)
    if tamper == "delete" and victim == 5:
        assert problems == []  # the newest row: only a recorded head can tell (see above)
    else:
        assert problems, (tamper, victim)


def _rows(store: Store) -> list[LedgerRow]:
    values = store.query(f"SELECT {', '.join(COLUMNS)} FROM {store.table('consent_ledger')} ORDER BY seq")
    rows = [_row_from(dict(zip(COLUMNS, v, strict=True))) for v in values]
    for row in rows:
        assert row_hash(row) == row.hash
    return rows


def test_decisions_loaded_before_a_crash_kept_their_batch_are_not_chained_twice(
    store: Store, writer: Pipeline, clock: FakeClock
) -> None:
    write(writer, clock, 2)
    records = [record(clock) for _ in range(3)]
    for r in records:
        writer.writer.submit(r, wait=False)
    assert writer.writer.flush()
    [batch] = writer.spool.pending("consent_ledger")
    payload = batch.read()
    assert writer.loader.flush()
    writer.spool.write(
        "consent_ledger", payload, rows=3
    )  # the same batch again, as after a crash before removal
    assert writer.loader.flush()
    result = verify(store, "site", clock(), RETENTION)
    assert result.ok and result.rows == 5
