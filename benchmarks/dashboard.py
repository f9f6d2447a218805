"""The marketer dashboard's report views on the embedded store: how long each view takes to compute, by date
range and filter, on a generated site of realistic shape, and which report (and which query) the time goes to.

    .venv/bin/python benchmarks/dashboard.py [--rows 10000000] [--repeat 7] [--data-dir DIR] [--unfiltered]
                                             [--as-published]
    .venv/bin/python benchmarks/dashboard.py --smoke       # 20000 rows over 14 days, one run, 7 days and
                                                           # 13 months only

The generated store is kept in ``--data-dir`` (one subdirectory per row count and seed) and reused by the next
run with the same sizes, so generating 10 million page views is paid once. The data: page views over the 13
months up to the day of generation (that day stays "today" when the store is reused), a few hundred thousand
visitors with a heavy-tailed number of visits (Zipf), visits of 1 to 8 pages, ~2000 paths of Zipf
popularity, 12 topics of Zipf popularity (a fifth of the paths have none, some two; a visitor leans to one
topic), countries NL, BE, DE and a long tail, three device classes, referrers and UTM campaigns on the entry
page of a visit, ``returning`` from the visitor's second visit on. Generated with numpy (which chDB brings
along through pandas), seeded, inserted in column batches while the materialized view fills the daily
statistics; the day salts are drawn first. Both tables are merged (``OPTIMIZE ... FINAL``) before measuring,
as a site's background merges would have them.

Then the cells of every finished day are published (``koekje.analytics.publish``, as the loader does in the
background), timed; on a reused store only what changed is. ``--live`` measures without them: every cell
worked out from the page views and statistics on each view, as for days not yet published.

Measured: each view (``views.VIEWS``: overview, topics, pages; the CSV export does the same work) for the
last 7, 30, 90 days and 13 months (396 days), without a filter, filtered by country NL and by the biggest
topic; each ``--repeat`` times, the first run discarded as warm-up (unless there is only one). Then, at 13
months without a filter, every report function the views call, on its own, and the store queries inside
them grouped by the report helper that sent them (``_cells``, ``_series``, ...).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from koekje.analytics import Store, StoreSettings, migrate, views
from koekje.analytics import reports as r
from koekje.analytics.aggregates import draw_salts
from koekje.analytics.publish import Publisher, with_published

SITE = "www.example.nl"
ZONE = "Europe/Amsterdam"
DATABASE = "koekje"
DAYS = 396  # 13 months: the longest range the dashboard allows is 400 days
MIN_VISITORS = 5  # the dashboard's default
TIMEOUT_S = 10.0  # the dashboard's default store_timeout_seconds: a view slower than this fails there
BATCH = 500_000
SMOKE_ROWS = 20_000
PUBLISHED_AFTER = timedelta(minutes=11)  # past the publisher's default grace of 10 minutes
SMOKE_DAYS = 14  # of page views (the 13-month views still read 13 months): publishing them takes seconds
SMOKE_RANGES = ("7d", "13m")

TOPICS = (
    "implantologie",
    "orthodontie",
    "mondhygiene",
    "kronen-bruggen",
    "wortelkanaal",
    "kindertandarts",
    "bleken",
    "angstbegeleiding",
    "spoed",
    "prothese",
    "parodontologie",
    "vacatures",
)
NEAR = ("NL", "BE", "DE")
NEAR_SHARE = (0.60, 0.13, 0.07)  # the long tail shares the rest
# fmt: off
TAIL = (
    "GB", "US", "FR", "ES", "IT", "PL", "TR", "MA", "SR", "AW", "CW", "SE", "NO", "DK", "FI", "AT", "CH",
    "IE", "PT", "GR", "CZ", "HU", "RO", "BG", "HR", "SI", "SK", "LT", "LV", "EE", "LU", "CA", "AU", "IN",
    "CN", "JP", "BR", "UA", "RU", "ZA",
)
# fmt: on
DEVICES = (("desktop", 0.50), ("mobile", 0.42), ("tablet", 0.08))
BROWSERS = {
    "desktop": (("Chrome", "Windows"), ("Edge", "Windows"), ("Firefox", "Windows"), ("Safari", "Mac OS X")),
    "mobile": (("Chrome Mobile", "Android"), ("Mobile Safari", "iOS"), ("Samsung Internet", "Android")),
    "tablet": (("Mobile Safari", "iOS"), ("Chrome Mobile", "Android")),
}
PREFIXES = ("192.0.2.0", "198.51.100.0", "203.0.113.0")  # documentation ranges (RFC 5737)
SEARCH = (("www.google.com", 15), ("www.google.nl", 9), ("www.bing.com", 3), ("duckduckgo.com", 2.5))
SOCIAL = (("www.linkedin.com", 3), ("www.facebook.com", 2.5), ("l.instagram.com", 1.5), ("t.co", 1))
CAMPAIGN_SOURCES = (
    ("newsletter", "email"),
    ("linkedin", "social"),
    ("google", "cpc"),
    ("facebook", "social"),
    ("Partner Mail", "email"),  # not a plain name: counted as "(other)" by the statistics
)
PAGES_PER_VISIT = (0.36, 0.22, 0.14, 0.10, 0.07, 0.05, 0.035, 0.025)  # 1 to 8 pages, ~2.7 on average
HOURS = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.5, 3, 5, 6, 6, 5.5, 5, 5.5, 6, 5.5, 5, 4.5, 4, 5, 5.5, 5, 3.5, 2)

IntArray = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]


def zipf_weights(n: int, exponent: float) -> npt.NDArray[np.float64]:
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def objects(values: list[Any]) -> ObjArray:
    """An object array of the values (tuples stay whole), to pick Python values by index in C."""
    out = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        out[index] = value
    return out


@dataclass
class Generated:
    """Page views as index arrays into small tables of Python values: a batch's columns are picked in C."""

    rows: int
    visitors: int
    visits: int
    ts_ms: IntArray
    visit_start: IntArray  # seconds
    visitor: IntArray
    path: IntArray
    visit: IntArray  # per row: the visit, to pick the visit's source, device, ...
    entry: npt.NDArray[np.bool_]
    returning: npt.NDArray[np.bool_]
    visitor_ids: ObjArray  # ints (the UUID's 128 bits)
    visitor_country: ObjArray
    visitor_agent: IntArray  # index into agents
    visitor_prefix: ObjArray
    agents: list[tuple[str, str, str]]  # device, browser, os
    paths: ObjArray
    path_topics: ObjArray  # tuples
    visit_referrer: ObjArray
    visit_utm: IntArray  # index into utms
    utms: list[tuple[str, str, str]]

    def batches(self, size: int) -> Iterator[dict[str, list[Any]]]:
        """The page views as columns of Python values, ``size`` rows at a time, in time order."""
        agent_parts = [objects([agent[n] for agent in self.agents]) for n in range(3)]
        utm_parts = [objects([utm[n] for utm in self.utms]) for n in range(3)]
        for start in range(0, self.rows, size):
            part = slice(start, min(start + size, self.rows))
            visitor, visit, entry = self.visitor[part], self.visit[part], self.entry[part]
            agent = self.visitor_agent[visitor]
            utm = np.where(entry, self.visit_utm[visit], 0)  # campaign and referrer: the entry page's
            yield {
                "ts": self.ts_ms[part].tolist(),
                "site": [SITE] * len(visitor),
                "visitor_id": self.visitor_ids[visitor].tolist(),
                "path": self.paths[self.path[part]].tolist(),
                "topics": self.path_topics[self.path[part]].tolist(),
                "referrer_host": np.where(entry, self.visit_referrer[visit], "").tolist(),
                "country": self.visitor_country[visitor].tolist(),
                "ip_prefix": self.visitor_prefix[visitor].tolist(),
                "utm_source": utm_parts[0][utm].tolist(),
                "utm_medium": utm_parts[1][utm].tolist(),
                "utm_campaign": utm_parts[2][utm].tolist(),
                "device": agent_parts[0][agent].tolist(),
                "browser": agent_parts[1][agent].tolist(),
                "os": agent_parts[2][agent].tolist(),
                "visit_start": self.visit_start[visit].tolist(),
                "entry": entry.tolist(),
                "returning": self.returning[part].tolist(),
            }


def generate(rows: int, seed: int, now: datetime, zone: ZoneInfo, days: int = DAYS) -> Generated:
    rng = np.random.default_rng(seed)
    today = now.astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    midnight_ms = np.array(
        [int(datetime.combine(first + timedelta(days=d), datetime.min.time(), zone).timestamp()) * 1000
         for d in range(days)],
        dtype=np.int64,
    )  # fmt: skip
    # Days: growing traffic, quieter weekends, noise, a few campaign peaks.
    trend = np.linspace(0.7, 1.3, days)
    weekday = np.array([0.65 if (first + timedelta(days=d)).weekday() >= 5 else 1.0 for d in range(days)])
    day_weights = trend * weekday * rng.lognormal(0, 0.12, days)
    day_weights[rng.choice(days, 6, replace=False)] *= 2.5
    day_weights /= day_weights.sum()

    # Visits of 1-8 pages until there are `rows` page views (the last visit cut short).
    mean_pages = float(np.dot(np.arange(1, 9), PAGES_PER_VISIT))
    pages = rng.choice(np.arange(1, 9), size=int(rows / mean_pages * 1.1) + 100, p=PAGES_PER_VISIT)
    ends = np.cumsum(pages)
    n_visits = int(np.searchsorted(ends, rows)) + 1
    pages = pages[:n_visits]
    pages[-1] -= int(ends[n_visits - 1]) - rows
    # Visitors with a Zipf number of visits (most come once, some hundreds of times).
    counts = np.minimum(rng.zipf(1.9, size=n_visits), 1000)
    n_visitors = int(np.searchsorted(np.cumsum(counts), n_visits)) + 1
    counts = counts[:n_visitors]
    counts[-1] -= int(counts.sum()) - n_visits
    visit_visitor = rng.permutation(np.repeat(np.arange(n_visitors), counts))
    # When: a day (trend and weekday), an hour of the day (the site's profile), a second in it; today's
    # visits only up to now.
    visit_day = rng.choice(days, size=n_visits, p=day_weights)
    hour_weights = np.array(HOURS) / sum(HOURS)
    seconds = rng.choice(24, size=n_visits, p=hour_weights) * 3600 + rng.integers(0, 3600, n_visits)
    today_s = int((now - datetime.combine(today, datetime.min.time(), zone)).total_seconds())
    last = visit_day == days - 1
    seconds[last] = seconds[last] * max(today_s - 600, 0) // 86400
    start_ms = midnight_ms[visit_day] + seconds * 1000
    visit_start = start_ms // 1000
    # Returning: every visit of a visitor after their first.
    order = np.lexsort((start_ms, visit_visitor))
    ranked = np.empty(n_visits, dtype=bool)
    sorted_visitor = visit_visitor[order]
    ranked[order] = np.concatenate(([False], sorted_visitor[1:] == sorted_visitor[:-1]))

    # Rows: the pages of each visit, 10-240 s apart.
    visit = np.repeat(np.arange(n_visits), pages)
    offsets = np.concatenate(([0], np.cumsum(pages)[:-1]))
    position = np.arange(rows) - offsets[visit]
    entry = position == 0
    gaps = np.where(entry, 0, rng.integers(10, 240, rows))
    within = np.cumsum(gaps)
    within -= within[offsets][visit]
    ts_ms = start_ms[visit] + within * 1000 + rng.integers(0, 1000, rows)

    # Paths: ~2000 of Zipf popularity; topics of Zipf popularity, none on a fifth of the paths, two on some.
    n_paths = max(50, min(2000, rows // 10))
    topic_weights = zipf_weights(len(TOPICS), 1.1)
    kinds = rng.choice(3, size=n_paths, p=(0.20, 0.65, 0.15))  # no topic, one, two
    kinds[0] = 0  # the home page
    path_topics: list[tuple[str, ...]] = []
    path_names: list[str] = []
    for index, kind in enumerate(kinds):
        chosen = rng.choice(len(TOPICS), size=2, replace=False, p=topic_weights)
        named = tuple(TOPICS[t] for t in chosen[: int(kind)])
        path_topics.append(named)
        section = named[0] if named else ("over-ons", "contact", "nieuws", "praktisch")[index % 4]
        path_names.append(f"/{section}/pagina-{index}" if index else "/")
    path_cdf = np.cumsum(zipf_weights(n_paths, 1.0))
    path_cdf[-1] = 1.0
    # Within a topic, its paths by the same popularity: one CDF per topic, each shifted by its number, so
    # that one searchsorted picks a path of the given topic for every row at once.
    keys: list[npt.NDArray[np.float64]] = []
    members: list[IntArray] = []
    popularity = zipf_weights(n_paths, 1.0)
    for t, name in enumerate(TOPICS):
        of_topic = np.array([p for p in range(n_paths) if name in path_topics[p]] or [0], dtype=np.int64)
        cdf = np.cumsum(popularity[of_topic]) / popularity[of_topic].sum()
        cdf[-1] = 1.0
        keys.append(t + cdf)
        members.append(of_topic)
    topic_keys, topic_members = np.concatenate(keys), np.concatenate(members)

    # Visitors: a favourite topic, a country, a device (and browser), an address prefix.
    favourite = rng.choice(len(TOPICS), size=n_visitors, p=topic_weights)
    tail = zipf_weights(len(TAIL), 1.2) * (1 - sum(NEAR_SHARE))
    countries = objects([*NEAR, *TAIL])
    visitor_country = countries[rng.choice(len(countries), size=n_visitors, p=[*NEAR_SHARE, *tail])]
    agents = [(device, b, o) for device, _ in DEVICES for b, o in BROWSERS[device]]
    agent_weights = np.array(
        [share / len(BROWSERS[device]) for device, share in DEVICES for _ in BROWSERS[device]]
    )
    visitor_agent = rng.choice(len(agents), size=n_visitors, p=agent_weights / agent_weights.sum())
    visitor_prefix = objects([*PREFIXES])[rng.integers(0, len(PREFIXES), n_visitors)]
    halves = rng.integers(0, 2**64, size=(n_visitors, 2), dtype=np.uint64).tolist()
    visitor_ids = objects([uuid.UUID(int=hi << 64 | lo, version=4).int for hi, lo in halves])

    # Pages: half from the visitor's favourite topic, the rest by overall popularity.
    visitor = visit_visitor[visit]
    u = rng.random(rows)
    picked_topic = np.minimum(
        np.searchsorted(topic_keys, favourite[visitor] + u, side="right"), len(topic_keys) - 1
    )
    path = np.where(
        rng.random(rows) < 0.5,
        topic_members[picked_topic],
        np.minimum(np.searchsorted(path_cdf, rng.random(rows), side="right"), n_paths - 1),
    )
    path[entry & (rng.random(rows) < 0.15)] = 0  # the home page is a common entry

    # Sources of visits: direct, search, social, other sites, campaigns.
    others = [f"www.site{n}.nl" for n in range(60)]
    hosts = ["", *(h for h, _ in SEARCH), *(h for h, _ in SOCIAL), *others]
    host_weights = np.array(
        [45, *(w for _, w in SEARCH), *(w for _, w in SOCIAL), *(zipf_weights(60, 1.0) * 7)]
    )
    visit_referrer = objects(hosts)[
        rng.choice(len(hosts), size=n_visits, p=host_weights / host_weights.sum())
    ]
    utms = [("", "", "")] + [
        (source, medium, f"campagne-{n}") for n in range(25) for source, medium in CAMPAIGN_SOURCES
    ]
    utm_weights = np.concatenate(([0.9], zipf_weights(len(utms) - 1, 1.0) * 0.1))
    visit_utm = rng.choice(len(utms), size=n_visits, p=utm_weights)
    campaign = visit_utm > 0
    visit_referrer[campaign & (rng.random(n_visits) < 0.6)] = ""

    # Chronological, as a site inserts them (a few parts per batch, not one per month).
    chrono = np.argsort(ts_ms, kind="stable")
    visit_sorted = visit[chrono]
    return Generated(
        rows=rows,
        visitors=n_visitors,
        visits=n_visits,
        ts_ms=ts_ms[chrono],
        visit_start=visit_start,
        visitor=visitor[chrono],
        path=path[chrono],
        visit=visit_sorted,
        entry=entry[chrono],
        returning=ranked[visit_sorted],
        visitor_ids=visitor_ids,
        visitor_country=visitor_country,
        visitor_agent=visitor_agent,
        visitor_prefix=visitor_prefix,
        agents=agents,
        paths=objects(path_names),
        path_topics=objects(path_topics),
        visit_referrer=visit_referrer,
        visit_utm=visit_utm,
        utms=utms,
    )


# -- the store -----------------------------------------------------------------------------------------


def open_store(directory: Path) -> TimedStore:
    settings = StoreSettings(f"chdb://{directory}", DATABASE, timezone=ZONE)
    store = TimedStore(settings, prepare=migrate, lock_timeout=3600)
    store.open()
    return store


def count(store: Store, table: str) -> int:
    [(n,)] = store.query(f"SELECT count() FROM {store.table(table)}")
    return int(n)


def fill(store: Store, rows: int, seed: int, now: datetime, days: int = DAYS) -> None:
    zone = ZoneInfo(ZONE)
    started = time.perf_counter()
    data = generate(rows, seed, now, zone, days)
    made = time.perf_counter() - started
    print(
        f"generated {rows:,} page views: {data.visitors:,} visitors, {data.visits:,} visits in {made:.1f} s",
        flush=True,
    )
    today = now.astimezone(zone).date()
    draw_salts(store, [today - timedelta(days=d) for d in range(-1, days + 1)], lambda: now)
    started = time.perf_counter()
    converting = inserting = 0.0
    done = 0
    batches = data.batches(BATCH)
    while True:
        converting -= time.perf_counter()
        batch = next(batches, None)
        converting += time.perf_counter()
        if batch is None:
            break
        inserting -= time.perf_counter()
        store.insert_columns("page_views", batch)
        inserting += time.perf_counter()
        done += len(batch["ts"])
        if done % (BATCH * 4) == 0 or done == rows:
            rate = done / (time.perf_counter() - started)
            print(f"  inserted {done:,} ({rate:,.0f} rows/s)", flush=True)
    print(
        f"to Python columns {converting:.1f} s, insert_columns {inserting:.1f} s "
        f"({rows / inserting:,.0f} rows/s, the daily statistics' view included)",
        flush=True,
    )
    started = time.perf_counter()
    for table in ("page_views", "daily_stats"):
        store.command(f"OPTIMIZE TABLE {store.table(table)} FINAL")
    print(f"merged (OPTIMIZE FINAL) in {time.perf_counter() - started:.1f} s", flush=True)


def prepared(directory: Path, rows: int, seed: int, days: int = DAYS) -> tuple[TimedStore, datetime]:
    """The store with the generated page views, made now or reused; and the moment it was made ("now")."""
    meta_file = directory / "benchmark.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        store = open_store(directory / "store")
        same = (meta.get("rows"), meta.get("seed"), meta.get("days", DAYS)) == (rows, seed, days)
        if same and count(store, "page_views") == rows:
            print(f"reusing {directory} ({rows:,} page views made {meta['now']})", flush=True)
            return store, datetime.fromisoformat(meta["now"])
        store.close()
        meta_file.unlink()
    if (directory / "store").exists():  # an earlier run stopped while filling it
        print(f"{directory} is incomplete: made again", flush=True)
        shutil.rmtree(directory / "store")
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    store = open_store(directory / "store")
    fill(store, rows, seed, now, days)
    assert count(store, "page_views") == rows
    meta_file.write_text(json.dumps({"rows": rows, "seed": seed, "days": days, "now": now.isoformat()}))
    return store, now


# -- measuring -------------------------------------------------------------------------------------------


class TimedStore(Store):
    """The store, timing each query under the name of the report helper (and report) that sent it."""

    def __init__(self, settings: StoreSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.recording = False

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if not self.recording:
            return super().query(sql, parameters)
        started = time.perf_counter()
        try:
            return super().query(sql, parameters)
        finally:
            self.timings[_caller()].append(time.perf_counter() - started)


def _caller() -> str:
    """The chain of report functions from the outermost to the one that called the store."""
    frame: FrameType | None = sys._getframe(2)
    chain: list[str] = []
    while frame is not None:
        if frame.f_globals.get("__name__") == r.__name__:
            chain.append(frame.f_code.co_name)
        frame = frame.f_back
    return " > ".join(reversed(chain)) or "?"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def timed(call: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of each run after the first (the warm-up), or of the one run. The CPU time
    is the whole process's (chDB's query threads run in it): steadier than wall time on a shared machine."""
    wall, cpu = [], []
    for _ in range(repeat):
        started, used = time.perf_counter(), time.process_time()
        call()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
    return (wall[1:], cpu[1:]) if repeat > 1 else (wall, cpu)


def row(wall: list[float], cpu: list[float]) -> str:
    slow = "  > timeout" if max(wall) > TIMEOUT_S * 1000 else ""
    return (
        f"{percentile(wall, 50):>9.1f} {percentile(wall, 95):>9.1f} {max(wall):>9.1f} "
        f"{percentile(cpu, 50):>9.1f}{slow}"
    )


def ranges(today: date) -> dict[str, Mapping[str, str]]:
    first = today - timedelta(days=DAYS - 1)
    return {
        "7d": {"preset": "7d"},
        "30d": {"preset": "30d"},
        "90d": {"preset": "90d"},
        "13m": {"from": first.isoformat(), "to": today.isoformat()},
    }


def biggest_topic(store: Store) -> str:
    [(topic,)] = store.query(
        f"""
        SELECT topic FROM {store.table("daily_stats")} WHERE topic NOT IN ('*', '')
        GROUP BY topic ORDER BY sum(page_views) DESC, topic LIMIT 1
        """
    )
    return str(topic)


def measure(
    store: TimedStore, now: datetime, repeat: int, only: Sequence[str] | None = None, unfiltered: bool = False
) -> None:
    """Time the views for the ranges (``only`` some of them; ``unfiltered``: without a filter only), then each
    report at 13 months."""
    zone = ZoneInfo(ZONE)
    today = now.astimezone(zone).date()
    topic = biggest_topic(store)
    chosen = {label: days for label, days in ranges(today).items() if only is None or label in only}
    for label, days in chosen.items():
        sel = views.parse(days, today, SITE, zone, MIN_VISITORS).selection
        print(f"range {label}: {sel.first} .. {sel.last} ({sel.days} days)")
    filters: dict[str, dict[str, str]] = {
        "-": {},
        "country=NL": {"country": "NL"},
        f"topic={topic}": {"topic": topic},
    }
    if unfiltered:
        filters = {"-": {}}
    print(f"\n{repeat} run(s) per row{', the first discarded' if repeat > 1 else ''}; ms per view")
    print(f"{'view':<9} {'range':<5} {'filter':<22} {'p50':>9} {'p95':>9} {'max':>9} {'cpu p50':>9}")
    for name, view in views.VIEWS.items():
        for label, days in chosen.items():
            for filtered, values in filters.items():
                request = views.parse({**days, **values}, today, SITE, zone, MIN_VISITORS)
                wall, cpu = timed(partial(view, store, request, now), repeat)
                print(f"{name:<9} {label:<5} {filtered:<22} {row(wall, cpu)}", flush=True)

    # Each report function of the three views on its own, 13 months, no filter.
    sel = with_published(store, views.parse(ranges(today)["13m"], today, SITE, zone, MIN_VISITORS).selection)
    # (By name: a report missing from the installed version is said to be missing, not an error.)
    calls: dict[str, tuple[str, tuple[object, ...]]] = {
        "overview": ("overview", (store, sel)),
        "topics": ("topics", (store, sel)),
        "sources": ("sources", (store, sel)),
        "countries": ("countries", (store, sel)),
        "devices": ("devices", (store, sel)),
        "realtime": ("realtime", (store, SITE, now, MIN_VISITORS)),
        "sites": ("sites", (store,)),
        "topic_series (5 topics)": ("topic_series", (store, sel, [topic] * 5)),
        "topic_by country": ("topic_by", (store, sel, r.COUNTRY)),
        "topic_by device": ("topic_by", (store, sel, r.DEVICE)),
        "topic_pages": ("topic_pages", (store, sel)),
        "topic_sources": ("topic_sources", (store, sel)),
        "co_interest": ("co_interest", (store, sel)),
        "pages": ("pages", (store, sel)),
        "entry_pages": ("entry_pages", (store, sel)),
        "exit_pages": ("exit_pages", (store, sel)),
        "referrers": ("referrers", (store, sel)),
        "campaigns": ("campaigns", (store, sel)),
    }
    print("\nreports at 13 months, no filter; ms per call")
    print(f"{'report':<24} {'p50':>9} {'p95':>9} {'max':>9} {'cpu p50':>9}")
    store.timings.clear()
    store.recording = True
    for label, (name, args) in calls.items():
        function = getattr(r, name, None)
        if function is None:
            print(f"{label:<24} (not in this version of the reports)")
            continue
        wall, cpu = timed(partial(function, *args), repeat)
        print(f"{label:<24} {row(wall, cpu)}", flush=True)
    store.recording = False
    print("\nstore queries in those reports, by sender (all runs, warm-up included); ms")
    print(f"{'sender':<52} {'calls':>6} {'p50':>9} {'total':>10}")
    spent = sorted(store.timings.items(), key=lambda item: -sum(item[1]))
    for sender, seconds in spent:
        ms = [s * 1000 for s in seconds]
        print(f"{sender:<52} {len(ms):>6} {statistics.median(ms):>9.1f} {sum(ms):>10.0f}")


def publish(store: Store, now: datetime, unfiltered: bool = False) -> None:
    """Publish every finished day's cells, as the loader's publisher does in the background: the views
    without a filter, and (as once a marketer has used them) with a country and with a topic filter; with
    ``unfiltered``, the views without a filter only (no kind of filter asked for)."""
    zone = ZoneInfo(ZONE)
    today = now.astimezone(zone).date()
    if unfiltered:
        store.command(f"TRUNCATE TABLE {store.table('publication_wants')}")
    for filters in () if unfiltered else ({"country": "NL"}, {"topic": "x"}):
        with_published(
            store, views.parse({"preset": "7d", **filters}, today, SITE, zone, MIN_VISITORS).selection
        )
    # As the loader has it a few minutes after "now": a store made just after midnight would otherwise measure
    # yesterday worked out live, as a real site does only in the first minutes of a day (the grace for the
    # spool: ``Publisher(grace=...)``).
    publisher = Publisher(store, zone, MIN_VISITORS, lambda: now + PUBLISHED_AFTER)
    started = time.perf_counter()
    while not publisher.step(600.0):
        pass
    seconds = time.perf_counter() - started
    cells = count(store, "published_cells")
    print(f"published {publisher.published} days in {seconds:.1f} s; {cells:,} published cells", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=10_000_000, help="page views to generate")
    parser.add_argument("--repeat", type=int, default=7, help="runs per measurement (the first is warm-up)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where generated stores are kept and reused (default: /tmp/koekje-dashboard-benchmark; "
        "with --smoke, a temporary directory removed afterwards)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_ROWS} rows over the last {SMOKE_DAYS} days, one run each, ranges "
        f"{' and '.join(SMOKE_RANGES)}, a temporary store",
    )
    parser.add_argument(
        "--unfiltered",
        action="store_true",
        help="publish and measure the views without a filter only (for sizes whose every kind of filter "
        "would take hours to publish)",
    )
    parser.add_argument(
        "--live", action="store_true", help="without published cells: every view works its cells out"
    )
    parser.add_argument(
        "--as-published",
        action="store_true",
        help="publish nothing more: measure the store as far as it is published (days not published yet "
        "are worked out on each view, as the dashboard does), saying which days are",
    )
    args = parser.parse_args(argv)
    rows, repeat = (SMOKE_ROWS, 1) if args.smoke else (args.rows, args.repeat)
    if rows < 1000 or repeat < 1:
        parser.error("use --rows 1000 or more and --repeat 1 or more")
    temporary = args.data_dir is None and args.smoke
    root = (
        Path(tempfile.mkdtemp())
        if temporary
        else args.data_dir or Path(tempfile.gettempdir()) / "koekje-dashboard-benchmark"
    )
    days = SMOKE_DAYS if args.smoke else DAYS
    directory = root / (f"rows-{rows}-seed-{args.seed}" + ("" if days == DAYS else f"-days-{days}"))
    started = time.perf_counter()
    try:
        store, now = prepared(directory, rows, args.seed, days)
        try:
            stats = count(store, "daily_stats")
            print(f"{rows:,} page views, {stats:,} rows of daily statistics, now = {now.isoformat()}")
            source = Path(r.__file__).read_bytes()
            print(f"measuring {r.__file__} (sha256 {hashlib.sha256(source).hexdigest()[:12]})")
            if args.live:
                for module in (views, sys.modules[__name__]):  # every cell worked out on every view
                    setattr(module, "with_published", lambda store, sel: sel)  # noqa: B010
            elif args.as_published:
                published = store.query(
                    f"SELECT filters, uniqExact(day), min(day), max(day) FROM {store.table('publications')} "
                    "GROUP BY filters ORDER BY filters"
                )
                for kind, n, first, last in published:
                    print(f"published, filter kind {kind or '(none)'!r}: {n} days, {first} .. {last}")
            else:
                publish(store, now, args.unfiltered)
            measure(store, now, repeat, SMOKE_RANGES if args.smoke else None, args.unfiltered)
        finally:
            store.close()
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
