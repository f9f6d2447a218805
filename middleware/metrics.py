"""Prometheus metrics at ``GET /_koekje/metrics`` (off by default; when on, behind a token and/or an address
allowlist).

Counts come from the counters koekje keeps anyway (recorder, capture, ledger, loader, enforcement), read
at scrape time by a prometheus-client collector: nothing extra on the request path. With several worker
processes each scrape is answered by one of them, so every worker also writes a snapshot of its counters to
the spool directory now and then, and the answer sums the snapshots of the workers that are alive: the
totals are the site's, whichever worker answers.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from koekje.analytics.loader import LOAD_BUCKETS
from koekje.analytics.web import BODY_SECONDS

Sample = dict[str, Any]
log = logging.getLogger("koekje")
SNAPSHOT_EVERY = 5.0  # seconds


class Snapshots:
    """Each worker's counters as files in ``<spool>/metrics/<pid>.json``, summed over live workers."""

    def __init__(self, directory: Path, read: Callable[[], Sample]) -> None:
        self._directory = directory
        self._read = read
        self._written_at = 0.0

    def write(self, force: bool = False) -> None:
        """Best effort (a full disk only makes the totals older): never raises."""
        now = time.monotonic()
        if not force and now - self._written_at < SNAPSHOT_EVERY:
            return
        self._written_at = now
        final = self._directory / f"{os.getpid()}.json"
        temporary = final.with_suffix(".tmp")
        try:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary.write_text(json.dumps(self._read()))
            os.replace(temporary, final)
        except OSError as exc:
            log.warning("koekje could not write its metrics snapshot: %s", exc)

    def total(self) -> Sample:
        """This worker's counters now, plus the last snapshot of every other live worker."""
        total = self._read()
        mine = f"{os.getpid()}.json"
        for path in self._directory.glob("*.json") if self._directory.exists() else ():
            if path.name == mine or not path.stem.isdigit():
                continue  # not a worker's snapshot
            if not _alive(int(path.stem)):
                path.unlink(missing_ok=True)
                continue
            try:
                total = _add(total, json.loads(path.read_text()))
            except (OSError, ValueError, TypeError, AttributeError):
                continue  # half-written or foreign: this scrape goes without it
        return total


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _add(a: Sample, b: Sample) -> Sample:
    """Counters added up, key by key (numbers, and dicts of numbers by label)."""
    total: Sample = dict(a)
    for key, value in b.items():
        if isinstance(value, dict):
            merged: Counter[str] = Counter(total.get(key, {}))
            merged.update(value)
            total[key] = dict(merged)
        elif isinstance(value, list):
            mine = total.get(key, [])
            longest = max(len(mine), len(value))
            mine, value = mine + [0] * (longest - len(mine)), value + [0] * (longest - len(value))
            total[key] = [x + y for x, y in zip(mine, value, strict=True)]
        else:  # counters, and the gauges of one worker (queue depth, ownership): the sum is the site's
            total[key] = total.get(key, 0) + value
    return total


class KoekjeCollector(Collector):
    def __init__(self, total: Callable[[], Sample], spool_bytes: Callable[[], int]) -> None:
        self._total = total
        self._spool_bytes = spool_bytes

    def collect(self) -> Iterator[Any]:
        sample = self._total()
        yield _counter("koekje_events_recorded", "page views handed to the write buffer", sample["recorded"])
        yield _counter("koekje_events_spooled", "page views written to the spool", sample["spooled"])
        yield _labelled(
            CounterMetricFamily, "koekje_rows_loaded", "rows loaded into the store", "table", sample["loaded"]
        )
        yield _labelled(
            CounterMetricFamily,
            "koekje_events_dropped",
            "events not kept, by reason",
            "reason",
            sample["dropped"],
        )
        yield _labelled(
            CounterMetricFamily,
            "koekje_consent_decisions",
            "consent decisions recorded, by method",
            "method",
            sample["decisions"],
        )
        yield _labelled(
            CounterMetricFamily,
            "koekje_cookies_removed",
            "Set-Cookie headers removed from the site's responses, by reason",
            "reason",
            sample["cookies_removed"],
        )
        yield _labelled(
            CounterMetricFamily,
            "koekje_values_clipped",
            "page views kept with a value cut to its bound (path, referrer, user_agent, utm_*), by field",
            "field",
            sample.get("clipped", {}),
        )
        yield _labelled(
            CounterMetricFamily,
            "koekje_pages_without_banner",
            "HTML pages koekje could not put its banner into: encoded_by_app, slow_head, head_not_found, "
            "tags_before_unknown_markup (tags placed, the banner left to banner.js)",
            "reason",
            sample.get("pages_without_banner", {}),
        )
        yield _counter(
            "koekje_client_disconnects",
            "requests to koekje's endpoints whose client hung up before sending its whole body",
            sample.get("disconnects", 0),
        )
        yield _counter(
            "koekje_slow_bodies",
            f"requests to koekje's endpoints whose body did not arrive within {BODY_SECONDS:g} s "
            "(answered 408, the connection closed)",
            sample.get("slow_bodies", 0),
        )
        yield _gauge("koekje_queue_depth", "events waiting in the write buffers", sample["queue_depth"])
        yield _gauge("koekje_spool_bytes", "bytes waiting in the spool", self._spool_bytes())
        yield _gauge("koekje_store_owners", "workers that own the store (1 when healthy)", sample["owner"])
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, LOAD_BUCKETS), "+Inf"], sample["load_buckets"], strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "koekje_load_duration_seconds",
            "how long one insert of spooled batches into the store took",
            buckets=buckets,
            sum_value=sample["load_seconds"],
        )


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _labelled(kind: Any, name: str, documentation: str, label: str, values: Mapping[str, float]) -> Any:
    family = kind(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([str(key)], value)
    return family


def exposition(collector: KoekjeCollector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
