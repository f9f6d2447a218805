"""A load soak (``make test-slow``): several uvicorn workers on the embedded store at full rate for a few
minutes on loopback. Every request answered, every consented page view in the store once.

``KOEKJE_SOAK_SECONDS`` sets how long (default 180), ``KOEKJE_SOAK_CONNECTIONS`` how many connections.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

import httpx2
import pytest
from servers import BROWSER, serve

from koekje.analytics import Store, StoreSettings

pytestmark = pytest.mark.slow
SECONDS = float(os.environ.get("KOEKJE_SOAK_SECONDS", "180"))
CONNECTIONS = int(os.environ.get("KOEKJE_SOAK_CONNECTIONS", "24"))
WORKERS = 3


async def browse(port: int, cookie: str, worker: int, until: float, counts: Counter[str]) -> None:
    """One keep-alive connection asking for consented pages as fast as they are answered (HTTP/1.1 by
    hand: a client library would be the bottleneck, not the site)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    try:
        while time.monotonic() < until:
            path = f"/soak/{worker}/{n}"
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {BROWSER['user-agent']}\r\n"
                f"Cookie: {cookie}\r\n\r\n".encode()
            )
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            counts["sent" if status == 200 else f"status {status}"] += 1
            n += 1
    except (OSError, asyncio.IncompleteReadError) as exc:
        counts[f"error {type(exc).__name__}"] += 1
    finally:
        writer.close()


def test_several_workers_at_full_rate_lose_nothing(tmp_path: Path) -> None:
    with serve(tmp_path, workers=WORKERS) as site:
        with httpx2.Client(base_url=site.url, timeout=30, headers=BROWSER) as client:
            assert client.post("/_koekje/consent", json={"categories": ["analytics"]}).status_code == 200
            # (Its visit cookie, as a browser in the middle of a visit sends it.)
            assert client.get("/start").status_code == 200
            cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
        counts: Counter[str] = Counter()

        async def load() -> None:
            until = time.monotonic() + SECONDS
            await asyncio.gather(*(browse(site.port, cookie, n, until, counts) for n in range(CONNECTIONS)))

        asyncio.run(load())
        site.stop()  # graceful: each worker drains into the store or the spool, the owner loads it
        assert not [line for line in site.log if "Traceback" in line]
    assert set(counts) == {"sent"}, counts  # no error, no other status
    with Store(StoreSettings(f"chdb://{tmp_path / 'store'}", "koekje")) as store:
        [(stored, paths)] = store.query(f"SELECT count(), uniqExact(path) FROM {store.table('page_views')}")
    assert (stored, paths) == (counts["sent"] + 1, counts["sent"] + 1)  # (+ the visit's first page)
    print(f"{counts['sent']} consented page views in {SECONDS:.0f} s over {WORKERS} workers, all stored")
