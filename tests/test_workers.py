"""Several worker processes on one embedded store, for real: uvicorn --workers (and gunicorn with uvicorn's
worker class) behind one socket, consented traffic, the worker that owns the store killed with SIGKILL, and
every page view in the store exactly once."""

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx2
import pytest
from servers import BROWSER, Site, serve
from servers import eventually as _eventually

from koekje.analytics import Store

WORKERS = 3


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Site]:
    with serve(tmp_path, workers=WORKERS) as site:
        yield site


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
    _survives_its_owner(workers)


def test_under_gunicorn_too(tmp_path: Path) -> None:
    # gunicorn's arbiter forks the workers and replaces a killed one itself: the same promises hold.
    with serve(tmp_path, workers=2, server="gunicorn") as site:
        assert len(site.workers) == 2
        _survives_its_owner(site)


def _survives_its_owner(workers: Site) -> None:
    with httpx2.Client(base_url=workers.url, timeout=30, headers=BROWSER) as client:
        granted = client.post("/_koekje/consent", json={"categories": ["analytics"]})
        assert granted.status_code == 200
        _views(client, 0, 150)
        with closing(workers.remote_store()) as store:
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


def test_an_erasure_reaches_every_worker_and_the_spool(workers: Site) -> None:
    """The visitor's page views are spread over the workers' write buffers and the spool when they ask to be
    forgotten: afterwards no table holds their visitor id, and what was still on its way is erased too."""
    browser = BROWSER
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

        with closing(workers.remote_store()) as store:

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

            # The loader removes a batch's file once it is in, and erases late events after the pass: wait
            # for the end of that, not just for the files to be gone (found flaky on a busy machine).
            _eventually(
                lambda: (
                    held() == (0, 30, 0)
                    and not any((workers.directory / "spool" / "page_views").glob("*.jsonl"))
                )
            )
