"""The spool and the loader on a real chDB store: batches survive outages and crashes and are loaded in
order, each exactly once."""

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from servers import eventually
from support import FakeClock

from koekje.analytics import Store
from koekje.analytics.loader import SWEEP_EVERY, Loader
from koekje.analytics.remote import Ownership, RemoteClient, StoreServer
from koekje.analytics.spool import LEFTOVER_SECONDS, Spool, SpoolFull


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    spool.open()
    return spool


def views(n: int, start: int = 0) -> bytes:
    rows = [
        {"ts": 1795593600 + i, "site": "s", "visitor_id": str(uuid.UUID(int=i + 1)), "path": f"/p/{i}",
         "topics": [], "referrer_host": "", "country": "NL", "ip_prefix": "203.0.113.0"}
        for i in range(start, start + n)
    ]  # fmt: skip
    return b"\n".join(json.dumps(row).encode() for row in rows)


def count(store: Store) -> tuple[int, int]:
    [(rows, paths)] = store.query(f"SELECT count(), uniqExact(path) FROM {store.table('page_views')}")
    return rows, paths


def test_the_spool_directory_is_private_and_batches_sort_in_order(spool: Spool) -> None:
    assert oct(spool.root.stat().st_mode & 0o777) == "0o700"
    names = [spool.write("page_views", views(1, i), rows=1).name for i in range(3)]
    assert [b.name for b in spool.pending("page_views")] == names == sorted(names)
    assert spool.size() == sum(len(views(1, i)) for i in range(3))


def test_a_full_spool_refuses_and_a_removed_batch_frees_room(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=len(views(2)))
    spool.open()
    first = spool.write("page_views", views(2), rows=2)
    with pytest.raises(SpoolFull):
        spool.write("page_views", views(1), rows=1)
    spool.remove(first)
    spool.write("page_views", views(1), rows=1)


def test_a_crashed_writers_half_written_batch_is_cleaned_up_and_a_live_ones_is_not(spool: Spool) -> None:
    """Another process starting on the same spool (a replaced worker) must not pull a batch from under a
    writer that is between writing and renaming it; a leftover an hour old is nobody's."""
    (spool.root / "page_views").mkdir()
    crashed = spool.root / "page_views" / "1-x-0-1.jsonl.tmp"
    crashed.write_bytes(b"{")
    an_hour_ago = time.time() - LEFTOVER_SECONDS - 1
    os.utime(crashed, (an_hour_ago, an_hour_ago))
    being_written = spool.root / "page_views" / "2-y-0-1.jsonl.tmp"
    being_written.write_bytes(b"{")
    Spool(spool.root).open()  # e.g. a worker gunicorn started in place of a killed one
    assert list((spool.root / "page_views").iterdir()) == [being_written]


def test_the_loader_sweeps_leftovers_of_workers_that_died_while_the_site_runs(
    store: Store, spool: Spool, clock: FakeClock
) -> None:
    """A half-written batch holds visitor data: in a site that runs for months without a restart it is
    removed by the loader (hourly), not only by the next start."""
    loader = Loader(store, spool, "s", clock)
    assert loader.load_pending()  # the first pass looks at once
    (spool.root / "page_views").mkdir()
    leftover = spool.root / "page_views" / "1-x-0-1.jsonl.tmp"
    leftover.write_bytes(b"{")
    an_hour_ago = time.time() - LEFTOVER_SECONDS - 1
    os.utime(leftover, (an_hour_ago, an_hour_ago))
    clock.advance(seconds=SWEEP_EVERY.total_seconds() / 2)
    assert loader.load_pending()
    assert leftover.exists()  # not looked for again yet
    clock.advance(seconds=SWEEP_EVERY.total_seconds() / 2 + 1)
    assert loader.load_pending()
    assert not leftover.exists()


def test_batches_spooled_close_together_go_in_as_one_insert_and_stop_does_not_wait(
    store: Store, spool: Spool, clock: FakeClock
) -> None:
    """An insert costs the store much whatever its size (embedded chDB: ~20 ms of CPU for a few hundred
    rows): a batch spooled less than the load interval after the last load waits for it, and goes in with
    the ones spooled meanwhile. A batch after a quiet while, idle rounds or not, goes at once; so does what
    waits when the loader stops. (The thread's own rounds are at least 60 s apart here: each round below is
    a wake's.)"""
    loader = Loader(
        store, spool, "s", clock, interval=60, load_interval=1000, monotonic=lambda: clock.now.timestamp()
    )

    def inserts() -> int:
        return sum(loader.latency.counts)

    def a_round(then: Callable[[], object] = lambda: None) -> None:  # a wake, and the round it causes
        passes = loader.passes
        then()
        loader.wake()
        eventually(lambda: loader.passes > passes, seconds=30)

    loader.start()
    try:
        eventually(lambda: loader.passes == 1, seconds=30)  # the first round at once, whatever the interval
        a_round(lambda: spool.write("page_views", views(5), rows=5))
        assert inserts() == 1 and loader.loaded["page_views"] == 5
        for i in range(1, 4):  # within the load interval: they wait
            a_round(functools.partial(spool.write, "page_views", views(5, i * 5), rows=5))
        assert inserts() == 1 and loader.loaded["page_views"] == 5
        clock.advance(seconds=1000)
        a_round()
        assert inserts() == 2 and loader.loaded["page_views"] == 20  # the three in one insert
        clock.advance(seconds=3000)  # a quiet while, with rounds that found nothing to load
        a_round()
        assert inserts() == 2
        a_round(lambda: spool.write("page_views", views(5, 20), rows=5))
        assert inserts() == 3 and loader.loaded["page_views"] == 25
        spool.write("page_views", views(5, 25), rows=5)  # within the interval again: only stop loads it
    finally:
        loader.stop()
    assert inserts() == 4 and loader.loaded["page_views"] == 30 and count(store) == (30, 30)


def test_the_load_interval_does_not_slow_the_rounds(store: Store, spool: Spool, clock: FakeClock) -> None:
    """The thread's rounds also refresh the erased visitors and take over the spool of a process that has
    gone: they go on at their own pace while a load waits for its interval."""
    loader = Loader(
        store, spool, "s", clock, interval=0.01, load_interval=60, monotonic=lambda: clock.now.timestamp()
    )
    loader.start()
    try:
        spool.write("page_views", views(5), rows=5)
        loader.wake()
        eventually(lambda: loader.loaded["page_views"] == 5, seconds=30)
        spool.write("page_views", views(5, 5), rows=5)
        passes = loader.passes
        eventually(lambda: loader.passes >= passes + 20, seconds=30)
        assert loader.loaded["page_views"] == 5
    finally:
        loader.stop()
    assert loader.loaded["page_views"] == 10


def test_batches_wait_for_an_outage_and_load_in_order(store: Store, spool: Spool, clock: FakeClock) -> None:
    loader = Loader(store, spool, "s", clock)
    store.close()
    for i in range(3):
        spool.write("page_views", views(10, i * 10), rows=10)
    assert not loader.load_pending()
    assert len(spool.pending("page_views")) == 3
    store.open()
    assert loader.load_pending()
    assert count(store) == (30, 30) and spool.pending("page_views") == []


def test_a_batch_loaded_before_a_crash_kept_it_is_not_loaded_twice(
    store: Store, spool: Spool, clock: FakeClock
) -> None:
    """Found by trying: a batch loaded alone, then grouped with newer ones after a crash, went in twice.
    Every load is a group now, also of one, named by a manifest first."""
    batch = spool.write("page_views", views(5), rows=5)
    (spool.root / "page_views" / f".group-{batch.id}").write_text(batch.name)
    store.insert_files("page_views", [batch.path], token=f"group-{batch.id}-{batch.id}")  # then the crash
    spool.write("page_views", views(5, 5), rows=5)  # newer batches arrive meanwhile
    assert Loader(store, spool, "s", clock).load_pending()
    assert count(store) == (10, 10)


def test_an_interrupted_group_the_store_cannot_take_yet_waits_as_it_is(
    store: Store, spool: Spool, clock: FakeClock
) -> None:
    """Found by a chaos test: an owner killed after its insert, before removing the batches; the next
    owner's first pass found the store away, went on to group the same first batch with a newer one (its
    manifest replaced), and the next pass put the first rows in again under the new group's token."""
    first, second = (spool.write("page_views", views(3, i * 3), rows=3) for i in range(2))
    (spool.root / "page_views" / f".group-{first.id}").write_text(f"{first.name}\n{second.name}")
    store.insert_files("page_views", [first.path, second.path], token=f"group-{first.id}-{second.id}")
    spool.write("page_views", views(3, 6), rows=3)  # while the owner was replaced
    loader = Loader(store, spool, "s", clock)
    store.close()  # the store away for a moment
    assert not loader.load_pending()
    manifest = spool.root / "page_views" / f".group-{first.id}"
    assert manifest.read_text().split() == [first.name, second.name]  # as the crashed owner left it
    store.open()
    assert loader.load_pending()
    assert count(store) == (9, 9)


def test_a_group_interrupted_by_a_crash_is_loaded_again_as_the_same_group(
    store: Store, spool: Spool, clock: FakeClock
) -> None:
    loader = Loader(store, spool, "s", clock)
    batches = [spool.write("page_views", views(10, i * 10), rows=10) for i in range(3)]
    manifest = spool.root / "page_views" / f".group-{batches[0].id}"
    manifest.write_text("\n".join(b.name for b in batches))
    store.insert_files(
        "page_views", [b.path for b in batches], token=f"group-{batches[0].id}-{batches[-1].id}"
    )
    # ... and here the loader died: nothing removed. The next pass loads the same group, once.
    assert loader.load_pending()
    assert count(store) == (30, 30) and not manifest.exists() and spool.pending("page_views") == []


def test_a_group_whose_batches_were_partly_removed_is_not_loaded_again(
    store: Store, spool: Spool, clock: FakeClock
) -> None:
    batches = [spool.write("page_views", views(10, i * 10), rows=10) for i in range(3)]
    manifest = spool.root / "page_views" / f".group-{batches[0].id}"
    manifest.write_text("\n".join(b.name for b in batches))
    spool.remove(batches[0])  # the insert had succeeded; the loader died while removing
    assert Loader(store, spool, "s", clock).load_pending()
    assert count(store) == (0, 0) and spool.pending("page_views") == [] and not manifest.exists()


def test_a_malformed_batch_in_a_group_is_found_and_moved_aside(
    store: Store, spool: Spool, clock: FakeClock
) -> None:
    spool.write("page_views", views(3), rows=3)
    spool.write("page_views", b'{"ts": "not a time", "path": 1}', rows=1)
    spool.write("page_views", views(3, 3), rows=3)
    loader = Loader(store, spool, "s", clock)
    assert loader.load_pending()
    assert count(store) == (6, 6) and loader.rejected["page_views"] == 1
    assert list((spool.root / "page_views").glob(".group-*")) == []  # no manifest of the failed group left


def test_an_interrupted_group_with_a_malformed_batch_does_not_stop_its_table(
    store: Store, spool: Spool, clock: FakeClock
) -> None:
    # The store refuses such a group whole (none of it went in): its batches go on their own.
    batches = [
        spool.write("page_views", views(3), rows=3),
        spool.write("page_views", b'{"ts": "not a time", "path": 1}', rows=1),
        spool.write("page_views", views(3, 3), rows=3),
    ]
    (spool.root / "page_views" / f".group-{batches[0].id}").write_text("\n".join(b.name for b in batches))
    loader = Loader(store, spool, "s", clock)
    assert loader.load_pending()
    assert count(store) == (6, 6) and loader.rejected["page_views"] == 1
    assert list((spool.root / "page_views").glob(".group-*")) == []


def test_what_is_no_batch_of_koekjes_is_set_aside_and_never_loaded(
    store: Store, spool: Spool, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by a chaos test: a file of another name stopped its table for good (a traceback a pass), a
    symbolic link was read through (its target quoted in the log), a batch with bytes that are not UTF-8
    was taken for the store being away, and an empty manifest (a full disk) stopped its table silently."""
    directory = spool.root / "page_views"
    directory.mkdir()
    (directory / "junk.jsonl").write_bytes(views(1, 100))
    (directory / "x\nINFO: forged line.jsonl").write_bytes(b"")  # a name is anyone's who could write there
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_bytes(views(1, 200))  # well-formed rows outside the spool
    linked = directory / "01796600000000000000-x.y-0000000000-1.jsonl"
    linked.symlink_to(outside)
    garbled = spool.write("page_views", b"\xff\xfe\x80 not json \xc3\x28\n", rows=1)
    (directory / ".group-01796600000000000001-x.y-0000000000-1").write_text("")  # as a full disk left it
    spool.write("page_views", b"/p/quoted is not json\n", rows=1)
    good = spool.write("page_views", views(3), rows=3)
    # A development version's name, without the row count: still a batch.
    (directory / "01796600000000000002-old.w-0000000000.jsonl").write_bytes(views(1, 300))
    loader = Loader(store, spool, "s", clock)
    assert loader.load_pending()
    assert count(store) == (4, 4)
    assert list(directory.iterdir()) == []
    assert outside.read_bytes() == views(1, 200)  # the link's target neither loaded nor moved
    assert loader.rejected["page_views"] == 6
    assert "\nINFO: forged" not in caplog.text and "\\nINFO: forged" in caplog.text  # escaped, not a line
    moved = " ".join(path.name for path in spool.rejected())
    assert f"page_views-{garbled.name}-" in moved and f"page_views-{linked.name}-" in moved
    assert good.name not in moved
    assert "quoted" not in caplog.text and "moved" in caplog.text  # the log quotes no row


def test_what_cannot_be_set_aside_never_stops_loading_and_a_stuck_group_is_warned_about(
    store: Store, spool: Spool, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Found in review: a directory named like a manifest, and a rejected/ that is a file, raised on every
    pass (a table's batches, and the tables after it, never loaded); a crash's group the store never takes
    stopped its table with a debug line only."""
    (spool.root / "page_views").mkdir()
    (spool.root / "page_views" / ".group-not-a-file").mkdir()
    (spool.root / "rejected").write_text("")  # nowhere to move anything
    spool.write("page_views", views(3), rows=3)
    loader = Loader(store, spool, "s", clock)
    assert loader.load_pending()
    assert count(store) == (3, 3)
    assert "could not move '.group-not-a-file' aside" in caplog.text

    stuck = spool.write("page_views", views(1, 10), rows=1)
    (spool.root / "page_views" / f".group-{stuck.id}").write_text(stuck.name)
    store.close()  # the store away: quiet at first, then a warning, once
    assert not loader.load_pending()
    assert "has not been able to load the group" not in caplog.text
    clock.advance(minutes=6)
    assert not loader.load_pending() and not loader.load_pending()
    assert caplog.text.count("has not been able to load the group") == 1
    store.open()
    assert loader.load_pending()
    assert count(store) == (4, 4)


def test_what_was_set_aside_expires_with_the_raw_rows(store: Store, spool: Spool, clock: FakeClock) -> None:
    rejected = spool.root / "rejected"
    rejected.mkdir()
    old, recent = rejected / "page_views-old.jsonl", rejected / "page_views-recent.jsonl"
    old.write_bytes(views(1))
    recent.write_bytes(views(1))
    past_retention = time.time() - store.settings.raw_retention_days * 86400 - 60
    os.utime(old, (past_retention, past_retention))
    assert Loader(store, spool, "s", clock).load_pending()
    assert spool.rejected() == [recent]


def test_a_writer_name_is_one_a_batch_name_can_hold() -> None:
    with pytest.raises(ValueError, match="no '-'"):
        Spool(Path("/nonexistent"), writer="a-b")


def test_a_malformed_batch_is_moved_aside_and_the_rest_loads(
    store: Store, spool: Spool, clock: FakeClock
) -> None:
    spool.write("page_views", b'{"ts": "not a time", "path": 1}\n{')
    spool.write("page_views", views(3), rows=3)
    loader = Loader(store, spool, "s", clock)
    assert loader.load_pending()
    assert count(store) == (3, 3)
    assert loader.rejected["page_views"] == 1 and len(list((spool.root / "rejected").iterdir())) == 1


REPLAY = """
import sys
from pathlib import Path
from koekje.analytics import Store, StoreSettings, migrate, utcnow
from koekje.analytics.loader import SWEEP_EVERY, Loader
from koekje.analytics.remote import Ownership
from koekje.analytics.spool import Spool

store = Store(StoreSettings(sys.argv[1], sys.argv[2]), prepare=migrate)
store.open()
if sys.argv[3] == "count":
    print(store.query(f"SELECT count(), uniqExact(path) FROM {store.table('page_views')}")[0])
    raise SystemExit
def loaded(table, rows):
    print(table, rows, flush=True)
loader = Loader(store, Spool(Path(sys.argv[3])), "s", utcnow, on_loaded=loaded)
loader.load_pending()
print("done", flush=True)
"""


def test_killed_mid_replay_the_next_replay_loads_every_batch_once(tmp_path: Path, database: str) -> None:
    """A real process loads the spool and is killed with SIGKILL while it is at it; a second process
    replays what is left. Every event is in the store exactly once. (Where the kill lands varies; the
    window between an insert and its batch's removal is covered exactly by the test above.)"""
    dsn = f"chdb://{tmp_path / 'store'}"
    spool = Spool(tmp_path / "spool")
    spool.open()
    for i in range(200):  # loaded in groups of 64 batches: four inserts
        spool.write("page_views", views(2000, i * 2000), rows=2000)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}

    def replay(*args: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-c", REPLAY, dsn, database, *args]
        return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)

    first = replay(str(spool.root))
    assert first.stdout is not None
    assert first.stdout.readline().startswith("page_views 128000")  # the first group is in
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    first.stdout.close()
    left = len(spool.pending("page_views"))
    assert 0 < left < 200  # killed mid-replay
    second = replay(str(spool.root))
    out, _ = second.communicate(timeout=120)
    assert out.endswith("done\n") and spool.pending("page_views") == []
    counted, _ = replay("count").communicate(timeout=120)
    assert counted.strip() == "(400000, 400000)"


@pytest.mark.parametrize("name", ["a{b}", "a*b", "a?b", "a,b"])
def test_a_spool_path_the_store_would_read_as_a_pattern_is_refused(tmp_path: Path, name: str) -> None:
    """Found by trying: with a glob character in the directory, loading inserted nothing and the batches
    were removed as loaded."""
    with pytest.raises(ValueError, match="would read the path as a pattern"):
        Spool(tmp_path / name).open()


def test_a_symlinked_spool_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match="symbolic link"):
        Spool(tmp_path / "link").open()


def test_the_loader_goes_on_after_its_directory_vanished(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    """Found by trying: one OSError (a full disk, a removed directory) ended the loader thread for good."""
    spool = Spool(tmp_path / "spool")
    spool.open()
    loader = Loader(store, spool, "s", clock, interval=0.01, ownership=Ownership(spool.root))
    loader.start()
    shutil.rmtree(spool.root)
    passes = loader.passes
    deadline = time.monotonic() + 30
    while loader.passes < passes + 3:  # the thread's own progress, from outside: a few failed rounds
        assert time.monotonic() < deadline
        time.sleep(0.01)
    spool.open()
    spool.write("page_views", views(2), rows=2)
    assert loader.flush()
    loader.stop()
    assert count(store) == (2, 2)


def test_threads_of_the_owner_all_hold_the_lock(tmp_path: Path) -> None:
    """Found by a flaky test: the loader's thread and a caller's flush asking at once each opened the lock
    file, and the second found the first one's lock and reported another owner."""
    for _ in range(20):
        ownership = Ownership(tmp_path)
        barrier = threading.Barrier(8)
        answers: list[bool] = []

        def ask(
            ownership: Ownership = ownership,
            barrier: threading.Barrier = barrier,
            answers: list[bool] = answers,
        ) -> None:
            barrier.wait()
            answers.append(ownership.try_acquire())

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [True] * 8
        ownership.release()


def test_a_spool_deeper_than_a_socket_address_can_name_still_serves_the_other_workers(tmp_path: Path) -> None:
    """Found when the tests ran side by side (longer temporary paths): an AF_UNIX address holds 107 bytes of
    path, and the owner of a spool that lay deeper could not open its socket ('AF_UNIX path too long'), so
    the site could not use its store."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "owner.sock"
    assert len(str(path)) > 108
    server = StoreServer(path, lambda request: [[request["sql"]]])
    server.start()
    try:
        assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
        client = RemoteClient(path, timeout=10)
        assert client.query("SELECT 1").result_rows == [("SELECT 1",)]
        client.close()
    finally:
        server.stop()
    assert not path.exists()


def test_a_group_manifest_naming_a_symbolic_link_is_not_read_through(
    store: Store, spool: Spool, clock: FakeClock, tmp_path: Path
) -> None:
    """Found by a helper: a manifest naming a batch-named link to a file outside the spool had the target's
    rows loaded (a lone link was already set aside)."""
    directory = spool.root / "page_views"
    directory.mkdir()
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_bytes(views(1, 200))
    linked = directory / "01796600000000000000-x.y-0000000000-1.jsonl"
    linked.symlink_to(outside)
    (directory / ".group-01796600000000000003-x.y-0000000000-1").write_text(linked.name + "\n")
    good = spool.write("page_views", views(2), rows=2)
    loader = Loader(store, spool, "s", clock)
    assert loader.load_pending()
    assert count(store) == (2, 2)  # the good batch only
    assert outside.read_bytes() == views(1, 200) and list(directory.iterdir()) == []
    moved = " ".join(path.name for path in spool.rejected())
    assert linked.name in moved and good.name not in moved


def test_an_owner_that_does_not_answer_is_given_up_on_once_not_asked_twice(tmp_path: Path) -> None:
    """Found by a helper: with the owner stopped (SIGSTOP), a visitor's "my data" page waited the timeout
    twice, because a timed-out request was sent again on a new connection; and a command that only came
    back late would have run twice. A timeout is given up on; only a lost connection is retried."""
    path = tmp_path / "owner.sock"
    release = threading.Event()
    asked: list[str] = []

    def stuck(request: dict[str, object]) -> list[list[object]]:
        asked.append(str(request["sql"]))
        release.wait(30)
        return [[1]]

    server = StoreServer(path, stuck)
    server.start()
    client = RemoteClient(path, timeout=0.2)
    try:
        with pytest.raises(TimeoutError):
            client.command("ALTER TABLE t DELETE WHERE 1")
        assert asked == ["ALTER TABLE t DELETE WHERE 1"]
    finally:
        release.set()
        client.close()
        server.stop()
