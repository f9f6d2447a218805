"""Several worker processes on one embedded store, for real: uvicorn --workers behind one socket, consented
traffic, the worker that owns the store killed with SIGKILL, and every page view in the store exactly once."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from support import SECRET

from koekje.analytics import Store, StoreSettings
from koekje.analytics.remote import Ownership

WORKERS = 3
TOML = """
[analytics]
data_dir = "store"
spool_dir = "spool"
flush_interval_seconds = 0.05
[dashboard]
min_visitors = 1
"""


class Site:
    def __init__(
        self, directory: Path, process: subprocess.Popen[str], port: int, workers: list[int]
    ) -> None:
        self.directory = directory
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.workers = workers

    def remote_store(self) -> Store:
        """The store as any other process sees it while the site runs: through its owner."""
        settings = StoreSettings(f"chdb://{self.directory / 'store'}", "koekje")
        return Store(settings, ownership=Ownership(self.directory / "spool"))

    def owner(self) -> int:
        """The worker that holds the store's lock, from the kernel's table of locks."""
        inode = os.stat(self.directory / "spool" / "owner.lock").st_ino
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "FLOCK" in fields and fields[-3].endswith(f":{inode}"):
                return int(fields[fields.index("WRITE") + 1])
        raise AssertionError("nobody holds the store")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Site]:
    (tmp_path / "koekje.toml").write_text(TOML)
    port = _free_port()
    env = {
        **os.environ,
        "KOEKJE_SECRET_KEY": SECRET,
        "KOEKJE_CONFIG": str(tmp_path / "koekje.toml"),
        "PYTHONPATH": str(Path(__file__).parent),
    }
    command = [sys.executable, "-m", "uvicorn", "worker_site:app", "--factory", "--workers", str(WORKERS)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "info"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    started: list[int] = []
    for line in process.stderr:  # each worker says when it is up: no guessing with sleeps
        found = re.search(r"Started server process \[(\d+)\]", line)
        if found:
            started.append(int(found[1]))
        if line.count("Application startup complete") and len(started) == WORKERS:
            break
    site = Site(tmp_path, process, port, started)
    yield site
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    process.stderr.close()


def _eventually(condition: object, seconds: float = 60) -> None:
    """Poll a condition that another process makes true, up to a deadline."""
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.05)


def _views(client: httpx2.Client, start: int, n: int) -> None:
    for i in range(start, start + n):
        for _ in range(5):  # a connection to the worker that was just killed: again, to another
            try:
                response = client.get(f"/page/{i}", headers={"connection": "close"})
                break
            except httpx2.TransportError:
                continue
        assert response.status_code == 200


def _count(store: Store) -> tuple[int, int]:
    try:
        [row] = store.query(f"SELECT count(), uniqExact(path) FROM {store.table('page_views')}")
    except Exception:
        return (-1, -1)  # the owner is being replaced: ask again
    return int(row[0]), int(row[1])


def test_every_page_view_arrives_once_when_the_owner_is_killed(workers: Site) -> None:
    # A browser's user agent: an HTTP library's is a crawler's, and crawlers are not counted.
    browser = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"}
    with httpx2.Client(base_url=workers.url, timeout=30, headers=browser) as client:
        granted = client.post("/_koekje/consent", json={"categories": ["analytics"]})
        assert granted.status_code == 200
        _views(client, 0, 150)
        store = workers.remote_store()
        _eventually(lambda: _count(store) == (150, 150))

        owner = workers.owner()
        assert owner in workers.workers
        os.kill(owner, signal.SIGKILL)

        _views(client, 150, 150)
        _eventually(lambda: _count(store) == (300, 300))
        assert workers.owner() != owner  # another worker took the store over

        # Whichever worker answers, the visitor's consent and the dashboard work.
        for _ in range(6):
            body = client.get("/_koekje/config.json", headers={"connection": "close"}).json()
            assert body["consent"]["categories"] == ["necessary", "analytics"]
        assert store.query(f"SELECT count() FROM {store.table('consent_ledger')}") == [(1,)]
        store.close()


def test_an_erasure_reaches_every_worker_and_the_spool(workers: Site) -> None:
    """The visitor's page views are spread over the workers' write buffers and the spool when they ask to be
    forgotten: afterwards no table holds their visitor id, and what was still on its way is erased too."""
    browser = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"}
    with (
        httpx2.Client(base_url=workers.url, timeout=30, headers=browser) as client,
        httpx2.Client(base_url=workers.url, timeout=30, headers=browser) as other,
    ):
        assert client.post("/_koekje/consent", json={"categories": ["analytics"]}).status_code == 200
        assert other.post("/_koekje/consent", json={"categories": ["analytics"]}).status_code == 200
        answers: list[dict[str, Any]] = []

        def answered() -> bool:
            # A worker may not reach the store's owner yet right after startup ("try again later"): again.
            answers.append(client.get("/_koekje/my-data").json())
            return "visitor_id" in answers[-1]

        _eventually(answered)
        visitor_id = uuid.UUID(answers[-1]["visitor_id"])
        _views(client, 0, 60)  # over every worker (one connection per request), not waited for
        old = dict(client.cookies)
        forgotten = client.post("/_koekje/forget", json={}, headers={"connection": "close"})
        assert forgotten.status_code == 200, forgotten.text
        # Requests that were on their way with the old cookie (another tab) reach the other workers after
        # the erasure: their page views are late events, erased on arrival.
        assert not client.cookies.get("koekje_consent")
        with httpx2.Client(base_url=workers.url, timeout=30, headers=browser, cookies=old) as late:
            _views(late, 100, 30)
        _views(other, 1000, 30)  # someone else's pages, after: once they are in, everything before is too

        store = workers.remote_store()

        def held() -> tuple[int, int, int]:
            try:
                [(mine, theirs)] = store.query(
                    f"SELECT countIf(visitor_id = {{v:UUID}}), countIf(visitor_id != {{v:UUID}}) "
                    f"FROM {store.table('page_views')}",
                    {"v": visitor_id},
                )
                [(ledger,)] = store.query(
                    f"SELECT count() FROM {store.table('consent_ledger')} WHERE visitor_id = {{v:UUID}}",
                    {"v": visitor_id},
                )
            except Exception:
                return (-1, -1, -1)
            return int(mine), int(theirs), int(ledger)

        # The loader removes a batch's file once it is in, and erases late events after the pass: wait for
        # the end of that, not just for the files to be gone (found flaky on a busy machine).
        _eventually(
            lambda: (
                held() == (0, 30, 0) and not any((workers.directory / "spool" / "page_views").glob("*.jsonl"))
            )
        )
        store.close()
