"""Prometheus metrics: off by default, for allowed networks or the token only, and telling what happened."""

import os
from collections.abc import Callable

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient
from support import consent, page_views

from koekje.middleware import Config
from koekje.middleware.config import MetricsSection

MakeClient = Callable[..., TestClient]
TOKEN = "metrics-token-0123456789abcdefghijklmnop"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"


def with_metrics(make_config: Callable[..., Config], allow: tuple[str, ...] = ("127.0.0.0/8",)) -> Config:
    return msgspec.structs.replace(
        make_config(), metrics=MetricsSection(enabled=True, allow=allow), metrics_token=TOKEN
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_off_by_default(make_client: MakeClient) -> None:
    assert make_client().get("/_koekje/metrics").status_code == 404


def test_only_allowed_networks_or_the_token(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    client = make_client(with_metrics(make_config))  # the test client's address is not loopback
    refused = client.get("/_koekje/metrics")
    assert refused.status_code == 403 and "monitoring" in refused.json()["error"]
    assert client.get("/_koekje/metrics", headers={"authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/_koekje/metrics", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    allowed = make_client(with_metrics(make_config, allow=("203.0.113.0/24",)))
    assert allowed.get("/_koekje/metrics").status_code == 200


def test_the_numbers_tell_what_happened(make_client: MakeClient, make_config: Callable[..., Config]) -> None:
    client = make_client(with_metrics(make_config, allow=("203.0.113.0/24",)))
    client.get("/")  # no consent yet
    consent(client, "analytics")
    client.get("/a", headers={"user-agent": CHROME})
    client.get("/b", headers={"user-agent": "curl/8.0"})
    assert len(page_views(client)) == 1
    found = samples(client.get("/_koekje/metrics").text)
    assert found[("koekje_events_recorded_total", ())] == 2
    assert found[("koekje_events_dropped_total", (("reason", "no_consent"),))] == 1
    assert found[("koekje_events_dropped_total", (("reason", "bot"),))] == 1
    assert found[("koekje_consent_decisions_total", (("method", "banner"),))] == 1
    assert found[("koekje_rows_loaded_total", (("table", "page_views"),))] == 1
    assert found[("koekje_store_owners", ())] == 1
    assert found[("koekje_load_duration_seconds_count", ())] >= 2  # the decision and the page view
    assert ("koekje_spool_bytes", ()) in found


def test_other_workers_counts_are_added(
    make_client: MakeClient, make_config: Callable[..., Config], tmp_path: object
) -> None:
    client = make_client(with_metrics(make_config, allow=("203.0.113.0/24",)))
    snapshots = client.app.runtime.snapshots  # type: ignore[attr-defined]
    other = snapshots._directory / "1.json"  # pid 1 is always alive: a live worker
    snapshots._directory.mkdir(parents=True, exist_ok=True)
    other.write_text(
        '{"recorded": 40, "dropped": {"bot": 3}, "loaded": {}, "decisions": {}, "spooled": 0,'
        ' "cookies_removed": {}, "queue_depth": 0, "owner": 0, "load_buckets": [], "load_seconds": 0}'
    )
    dead = snapshots._directory / "999999999.json"
    dead.write_text(other.read_text())
    found = samples(client.get("/_koekje/metrics").text)
    assert found[("koekje_events_recorded_total", ())] == 40
    assert found[("koekje_events_dropped_total", (("reason", "bot"),))] == 3
    assert not dead.exists()  # a dead worker's snapshot is dropped
    os.remove(other)


@pytest.mark.parametrize("allow", [("not a network",)])
def test_a_bad_allowlist_is_named(make_config: Callable[..., Config], allow: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"metrics\.allow"):
        MetricsSection(enabled=True, allow=allow)


def test_foreign_files_among_the_snapshots_are_ignored(
    make_client: MakeClient, make_config: Callable[..., Config]
) -> None:
    """Found by trying: a file whose name is not a pid made every scrape a 500."""
    client = make_client(with_metrics(make_config, allow=("203.0.113.0/24",)))
    directory = client.app.runtime.snapshots._directory  # type: ignore[attr-defined]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "backup.json").write_text("{}")
    (directory / "1.json").write_text('{"recorded": "a lot"}')  # pid 1 lives; its content is junk
    assert client.get("/_koekje/metrics").status_code == 200
