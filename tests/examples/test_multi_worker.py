"""examples/multi_worker as its README says to run it: `uvicorn workers_app:app --workers 2` with koekje's
logging configuration, behind a (simulated) proxy on this machine. Every consented page view arrives once,
with its topic, and no full client address is stored or logged."""

import re
import shutil
from pathlib import Path

import httpx2
from servers import BROWSER, eventually, uvicorn

from koekje.analytics import Store, StoreSettings
from koekje.analytics.remote import Ownership

EXAMPLES = Path(__file__).parents[2] / "examples"
VISITORS = ("198.51.100.77", "203.0.113.9")
WORKERS = 2


def _stored(site: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """The page views, asked of whichever worker owns the store."""
    settings = StoreSettings(f"chdb://{site / 'koekje-data'}", "koekje")
    with Store(settings, ownership=Ownership(site / "koekje-spool")) as store:
        rows = store.query(f"SELECT path, ip_prefix, topics FROM {store.table('page_views')} ORDER BY path")
    return [(str(path), str(prefix), tuple(topics)) for path, prefix, topics in rows]


def test_several_workers_store_every_page_view_once_and_log_no_address(tmp_path: Path) -> None:
    site = tmp_path / "multi_worker"
    shutil.copytree(EXAMPLES / "multi_worker", site, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLES / "uvicorn-logging.json", tmp_path)
    args = ["workers_app:app", "--log-config", "../uvicorn-logging.json"]
    with uvicorn(args, site, workers=WORKERS) as (url, log):
        for n, address in enumerate(VISITORS):
            headers = {**BROWSER, "x-forwarded-for": address, "connection": "close"}
            with httpx2.Client(base_url=url, headers=headers, timeout=30) as client:
                assert "data-koekje-banner" in client.get("/").text
                assert client.post("/_koekje/consent", json={"categories": ["analytics"]}).status_code == 200
                for topic in ("implants", "hygiene"):
                    assert client.get(f"/{topic}/page-{n}").status_code == 200
        expected = sorted(
            (f"/{topic}/page-{n}", re.sub(r"\.\d+$", ".0", address), (topic,))
            for n, address in enumerate(VISITORS)
            for topic in ("implants", "hygiene")
        )
        eventually(lambda: _stored(site) == expected, seconds=30)
        started = [line for line in log if "Application startup complete" in line]
        assert len(started) == WORKERS
    written = "".join(log)
    assert not any(address in written for address in VISITORS)  # neither stored nor logged whole
    assert written.count('198.51.100.0 - "GET /') == 3
