"""Published cells: a report read from them is the report worked out from the page views, for any traffic,
any filter and any range; a day is published again when late page views change it; superseded versions and
unfinished publications are cleared away."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import FakeClock

from koekje.analytics import PageView, PageViewSink, Store
from koekje.analytics import reports as r
from koekje.analytics.aggregates import draw_salts
from koekje.analytics.publish import KEEP_SUPERSEDED, Publisher, code, with_published
from koekje.analytics.reports import Filters, Selection

DAY = date(2026, 11, 2)
ZONE = ZoneInfo("Europe/Amsterdam")
K = 3
TOPICS = ("implants", "prices", "hygiene", "")
COUNTRIES = ("NL", "BE", "DE")
DEVICES = ("desktop", "mobile")
REFERRERS = ("", "www.google.nl", "duckduckgo.com")


def put(store: Store, views: list[PageView]) -> None:
    draw_salts(store, {v.ts.astimezone(ZONE).date() for v in views}, lambda: datetime.now(UTC))
    PageViewSink(store).write(views)


# A visitor's day: which day, which topics they read (one page each), from where, on what, how they came.
visits = st.tuples(
    st.integers(0, 3),
    st.lists(st.sampled_from(TOPICS), min_size=1, max_size=3),
    st.sampled_from(COUNTRIES),
    st.sampled_from(DEVICES),
    st.sampled_from(REFERRERS),
    st.booleans(),  # came from the newsletter campaign
)


def page_views(plan: list[tuple[int, list[str], str, str, str, bool]]) -> list[PageView]:
    views = []
    for n, (day, topics, country, device, referrer, campaign) in enumerate(plan):
        visitor = uuid.uuid4()
        # Late in the evening in Amsterdam: the day in the site's zone is not UTC's.
        start = datetime(DAY.year, DAY.month, DAY.day, 22, 30, tzinfo=UTC) + timedelta(days=day, seconds=n)
        for page, topic in enumerate(topics):
            ts = start + timedelta(minutes=page)
            views.append(
                PageView(
                    ts,
                    "default",
                    visitor,
                    f"/{topic or 'home'}/{page % 2}",
                    (topic,) if topic else (),
                    referrer if page == 0 else "",
                    country,
                    "192.0.2.0",
                    utm_source="nieuwsbrief" if campaign and page == 0 else "",
                    utm_medium="email" if campaign and page == 0 else "",
                    utm_campaign="najaar" if campaign and page == 0 else "",
                    device=device,
                    visit_start=int(start.timestamp()),
                    entry=page == 0,
                )
            )
    return views


REPORTS: list[Callable[[Store, Selection], Any]] = [
    r.overview,
    r.topics,
    r.countries,
    r.devices,
    r.sources,
    lambda store, sel: r.topic_by(store, sel, r.COUNTRY),
    lambda store, sel: r.topic_by(store, sel, r.DEVICE),
    r.topic_pages,
    r.topic_sources,
    r.co_interest,
    r.pages,
    r.entry_pages,
    r.exit_pages,
    r.campaigns,
    lambda store, sel: r.topic_series(store, sel, list(TOPICS)),
]
FILTERS = [Filters(), Filters(country="NL"), Filters(topic="implants", device="mobile")]


def topics(store: Store, sel: Selection) -> list[tuple[Any, ...]]:
    """The topics table as published cells give it: topic, page views, visitors."""
    return [row[:3] for row in r.topics(store, with_published(store, sel)).rows]


def pages(store: Store, sel: Selection) -> list[tuple[Any, ...]]:
    """The top pages table (read rolled up by whole months) as published cells give it."""
    return [row[:3] for row in r.pages(store, with_published(store, sel)).rows]


def publish_all(store: Store, clock: FakeClock) -> Publisher:
    publisher = Publisher(store, ZONE, K, clock)
    while not publisher.step(60.0):
        pass
    return publisher


def every_report(store: Store, first: date, last: date, published: bool) -> list[Any]:
    answers = []
    for filters in FILTERS:
        sel = Selection("default", first, last, ZONE, K, filters)
        if published:
            sel = with_published(store, sel)
            # Every day is published (quiet ones too): those cells are what is read, and the whole months
            # of this period and the one before it are rolled up.
            assert sel.live_days() == []
            assert [month for month, _ in sel.months] == whole_months(sel.previous().first, last)
        answers += [report(store, sel) for report in REPORTS]
    return answers


def whole_months(first: date, last: date) -> list[date]:
    months = []
    month = first.replace(day=1)
    while month <= last:
        following = (month + timedelta(days=31)).replace(day=1)
        if first <= month and following - timedelta(days=1) <= last:
            months.append(month)
        month = following
    return months


# The first and the last day of a range: within the days with page views, or from or to the edge of a month
# (October and November whole, and the period before a range from October 1 ends with September).
FIRSTS = [DAY + timedelta(days=n) for n in range(4)] + [
    date(2026, 9, 20),
    date(2026, 10, 1),
    date(2026, 11, 1),
]
LASTS = [DAY + timedelta(days=n) for n in range(4)] + [date(2026, 11, 30), date(2026, 12, 3)]


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(visits, min_size=1, max_size=40), st.sampled_from(FIRSTS), st.sampled_from(LASTS))
def test_reports_from_published_cells_are_the_reports_worked_out_from_page_views(
    store: Store, plan: list[tuple[int, list[str], str, str, str, bool]], a: date, b: date
) -> None:
    for table in (
        "page_views",
        "daily_stats",
        "published_cells",
        "publications",
        "published_months",
        "rollups",
    ):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    put(store, page_views(plan))
    first, last = min(a, b), max(a, b)
    live = every_report(store, first, last, published=False)
    for filters in FILTERS:  # a view with each kind of filter asks for it to be published
        with_published(store, Selection("default", first, last, ZONE, K, filters))
    publish_all(store, FakeClock(datetime(2026, 12, 20, tzinfo=UTC)))
    assert every_report(store, first, last, published=True) == live


def test_late_page_views_publish_their_day_again(store: Store) -> None:
    clock = FakeClock(datetime(2026, 11, 20, tzinfo=UTC))
    put(store, page_views([(0, ["implants"], "NL", "desktop", "", False)] * 4))
    publisher = publish_all(store, clock)
    sel = Selection("default", DAY, DAY, ZONE, K)
    assert topics(store, sel) == [("implants", 4, 4)]
    put(store, page_views([(0, ["prices"], "NL", "desktop", "", False)] * 3))  # loaded late
    assert topics(store, sel) == [("implants", 4, 4)]  # until published
    publisher.check_now()
    while not publisher.step(60.0):
        pass
    day = f"SELECT count() FROM {store.table('publications')} WHERE day = {{day:Date}}"
    assert store.query(day, {"day": DAY})[0][0] == 2  # published again, beside the first
    assert topics(store, sel) == [("implants", 4, 4), ("prices", 3, 3)]
    # The superseded version stays while a view may still read it, then goes (of that day only).
    versions = f"SELECT count(DISTINCT version) FROM {store.table('published_cells')}"
    assert store.query(versions)[0][0] == 2
    clock.advance(seconds=KEEP_SUPERSEDED.total_seconds() + 1)
    publisher.check_now()
    publisher.step(60.0)
    assert store.query(versions)[0][0] == 1
    assert store.query(day, {"day": DAY})[0][0] == 1
    later = f"SELECT count() FROM {store.table('publications')} WHERE day > {{day:Date}}"
    assert store.query(later, {"day": DAY})[0][0] == 17  # the quiet days after it, published once
    assert topics(store, sel) == [("implants", 4, 4), ("prices", 3, 3)]


def test_status_says_what_is_published_and_what_waits_without_publishing(store: Store) -> None:
    clock = FakeClock(datetime(2026, 11, 20, tzinfo=UTC))
    put(store, page_views([(0, ["implants"], "NL", "desktop", "", False)] * 4))
    publisher = Publisher(store, ZONE, K, clock)
    [before] = publisher.status()
    # Every finished day as far back as a view and the period before it reach, quiet ones too.
    assert (before.filters, before.published, before.waiting) == ("(none)", 0, 2 * r.MAX_RANGE_DAYS)
    assert before.quiet == before.waiting - 1  # all but the day with page views
    assert publisher.status() == [before]  # read only: nothing was published by asking
    publish_all(store, clock)
    [after] = publisher.status()
    assert (after.published, after.waiting, after.oldest_waiting) == (before.waiting, 0, None)
    put(store, page_views([(0, ["prices"], "NL", "desktop", "", False)] * 3))  # a late day waits again
    [late] = publisher.status()
    assert (late.published, late.waiting, late.oldest_waiting) == (before.waiting - 1, 1, DAY)


def test_a_day_is_published_once_it_is_over_and_another_threshold_is_another_code(store: Store) -> None:
    put(store, page_views([(0, ["implants"], "NL", "desktop", "", False)] * 4))
    # 23:05 in Amsterdam on DAY: the day is not over.
    clock = FakeClock(datetime(2026, 11, 2, 22, 5, tzinfo=UTC))
    publisher = Publisher(store, ZONE, K, clock)
    sel = Selection("default", DAY - timedelta(days=1), DAY, ZONE, K)
    assert publisher.step(60.0)
    assert with_published(store, sel).live_days() == [DAY]  # the quiet day before it is published
    clock.advance(hours=2)  # past midnight and the grace after it
    publisher.check_now()
    assert publisher.step(60.0)
    assert with_published(store, sel).live_days() == []
    assert code(store, ZONE, K) != code(store, ZONE, K + 1)
    other = with_published(store, Selection("default", DAY, DAY, ZONE, K + 1))
    assert other.published == ()


def test_a_kind_of_filter_is_published_once_a_view_has_asked_for_it(store: Store) -> None:
    put(store, page_views([(0, ["implants"], "NL", "desktop", "", False)] * 4))
    clock = FakeClock(datetime(2026, 11, 4, tzinfo=UTC))
    publisher = publish_all(store, clock)
    everything = Selection("default", DAY, DAY, ZONE, K)
    dutch = Selection("default", DAY, DAY, ZONE, K, Filters(country="NL"))
    assert with_published(store, everything).live_days() == []
    assert with_published(store, dutch).live_days() == [DAY]  # not published: asked for now
    publisher.check_now()
    while not publisher.step(60.0):
        pass
    assert with_published(store, dutch).live_days() == []
    assert r.topics(store, with_published(store, dutch)).rows == r.topics(store, dutch).rows


def test_whole_months_are_read_rolled_up_and_rolled_up_again_when_a_day_changes(store: Store) -> None:
    clock = FakeClock(datetime(2026, 12, 20, tzinfo=UTC))
    plan = [(n % 2, ["implants", "prices"], "NL", "desktop", "www.google.nl", False) for n in range(8)]
    put(store, page_views(plan))
    publisher = publish_all(store, clock)
    november = Selection("default", date(2026, 11, 1), date(2026, 11, 30), ZONE, K)
    live = [report(store, november) for report in REPORTS]
    sel = with_published(store, november)
    assert date(2026, 11, 1) in dict(sel.months)
    assert [report(store, sel) for report in REPORTS] == live
    before = [("/implants/0", 8, 8), ("/prices/1", 8, 8)]
    after = [*before, ("/prices/0", 3, 3)]
    assert pages(store, november) == before
    # Late page views on a day of a rolled-up month: its days are read until it is rolled up again.
    put(store, page_views([(1, ["prices"], "BE", "mobile", "", False)] * 3))
    assert pages(store, november) == before  # until published
    publisher.check_now()
    day = f"SELECT count() FROM {store.table('publications')} WHERE day = {{day:Date}}"
    while store.query(day, {"day": DAY + timedelta(days=1)})[0][0] < 2:
        publisher.step(0.0)  # a query at a time: the day published again, its month not yet rolled up
    assert pages(store, november) == after
    while not publisher.step(60.0):
        pass
    assert pages(store, november) == after
    assert [report(store, with_published(store, november)) for report in REPORTS] == [
        report(store, november) for report in REPORTS
    ]
    months = f"SELECT count(DISTINCT version) FROM {store.table('published_months')} WHERE month = {{m:Date}}"
    assert store.query(months, {"m": date(2026, 11, 1)})[0][0] == 2
    clock.advance(seconds=KEEP_SUPERSEDED.total_seconds() + 1)
    publisher.check_now()
    publisher.step(60.0)
    assert store.query(months, {"m": date(2026, 11, 1)})[0][0] == 1
    assert pages(store, november) == after


def test_a_month_with_a_day_of_an_erased_visitor_is_read_by_day_in_reports_from_raw_page_views(
    store: Store,
) -> None:
    put(store, page_views([(n % 2, ["implants"], "NL", "desktop", "", False) for n in range(8)]))
    publish_all(store, FakeClock(datetime(2026, 12, 20, tzinfo=UTC)))
    november = Selection("default", date(2026, 11, 1), date(2026, 11, 30), ZONE, K)
    pages = r.topic_pages(store, with_published(store, november)).rows
    assert [row[:3] for row in pages] == [("implants", "/implants/0", 8)]
    # A visitor of that day erased: raw-row reports leave the day out (the statistics still count them).
    store.insert_columns("erased_days", {"site": ["default"], "day": [DAY]})
    assert [row[:3] for row in r.topic_pages(store, november).rows] == [("implants", "/implants/0", 4)]
    assert r.topic_pages(store, with_published(store, november)).rows == r.topic_pages(store, november).rows
    assert r.topics(store, with_published(store, november)).rows == r.topics(store, november).rows


def test_whole_months_of_another_code_are_not_read_and_are_rolled_up_again(store: Store) -> None:
    """A roll-up says which grids it holds (its code): one from a version of koekje that rolled up other
    tables would lack a grid now read rolled up, and is neither read nor kept."""
    clock = FakeClock(datetime(2026, 12, 20, tzinfo=UTC))
    put(store, page_views([(n % 2, ["implants"], "NL", "desktop", "", False) for n in range(8)]))
    publisher = publish_all(store, clock)
    november = Selection("default", date(2026, 11, 1), date(2026, 11, 30), ZONE, K)
    assert code(store, ZONE, K, rolled=True) != code(store, ZONE, K)
    rollups = store.table("rollups")
    rows = store.query(f"SELECT site, filters, month, version, made_of, published FROM {rollups}")
    store.command(f"TRUNCATE TABLE {rollups}")
    store.insert_columns(
        "rollups",
        {
            "site": [row[0] for row in rows],
            "filters": [row[1] for row in rows],
            "month": [row[2] for row in rows],
            "version": [row[3] for row in rows],
            "code": ["of-an-older-koekje"] * len(rows),
            "made_of": [row[4] for row in rows],
            "published": [row[5] for row in rows],
        },
    )
    assert with_published(store, november).months == ()
    assert pages(store, november) == [row[:3] for row in r.pages(store, november).rows]
    publisher.check_now()
    while not publisher.step(60.0):
        pass
    assert date(2026, 11, 1) in dict(with_published(store, november).months)
    clock.advance(seconds=KEEP_SUPERSEDED.total_seconds() + 1)  # (a process on the older code may read them)
    publisher.check_now()
    assert publisher.step(60.0)
    assert store.query(f"SELECT count() FROM {rollups} WHERE code = 'of-an-older-koekje'")[0][0] == 0
    assert pages(store, november) == [row[:3] for row in r.pages(store, november).rows]


def test_a_check_waits_for_the_publication_in_progress_and_a_crashed_one_is_cleared_away(
    store: Store,
) -> None:
    clock = FakeClock(datetime(2026, 11, 20, tzinfo=UTC))
    put(store, page_views([(0, ["implants", "prices"], "NL", "desktop", "", False)] * 6))
    publisher = publish_all(store, clock)
    sel = Selection("default", DAY, DAY, ZONE, K)
    put(store, page_views([(0, ["implants", "hygiene"], "NL", "desktop", "", False)] * 4))  # loaded late
    publisher.check_now()
    publisher.step(0.0)  # the day's publication begun: its first grid is in
    clock.advance(hours=2)  # the loader's thread held up (or the clock moved on) past a check
    publisher.check_now()
    day = f"SELECT count() FROM {store.table('publications')} WHERE day = {{day:Date}}"
    while store.query(day, {"day": DAY})[0][0] == 1:
        publisher.step(0.0)
    assert [report(store, with_published(store, sel)) for report in REPORTS] == [
        report(store, sel) for report in REPORTS
    ]
    while not publisher.step(60.0):
        pass
    assert store.query(day, {"day": DAY})[0][0] == 2  # published once more, not queued again mid-way
    # Cells of a publication that never finished (the process died) go an hour after they were written.
    cells = store.table("published_cells")
    crashed = time.time_ns() - 2 * 3600 * 10**9
    store.command(
        f"INSERT INTO {cells} (site, grid, day, version, raw, s1, views, visits, returning, visitors) "
        "VALUES ('default', 'some-grid', {day:Date}, {v:UInt64}, 0, 'x', 9, 9, 0, 9)",
        {"day": DAY, "v": crashed},
    )
    publisher.check_now()
    while not publisher.step(60.0):
        pass
    assert store.query(f"SELECT count() FROM {cells} WHERE version = {{v:UInt64}}", {"v": crashed})[0][0] == 0


def test_cells_of_another_code_go_a_while_after_they_were_published_and_unknown_kinds_stay(
    store: Store,
) -> None:
    clock = FakeClock(datetime(2026, 11, 20, tzinfo=UTC))
    put(store, page_views([(0, ["implants"], "NL", "desktop", "", False)] * 4))
    publisher = publish_all(store, clock)
    publications = store.table("publications")
    store.insert_columns(
        "publications",
        {
            "site": ["default"] * 2,
            "filters": ["", "a-kind-of-a-later-version"],
            "day": [DAY] * 2,
            "version": [1, 2],
            "code": ["of-another-koekje"] * 2,
            "raw_rows": [0, 0],
            "stats_views": [0, 0],
            "published": [clock()] * 2,
        },
    )
    count = f"SELECT count() FROM {publications} WHERE version IN (1, 2)"
    publisher.check_now()
    assert publisher.step(60.0)
    assert store.query(count)[0][0] == 2  # just published: a process still on that code may be reading it
    clock.advance(seconds=KEEP_SUPERSEDED.total_seconds() + 1)
    publisher.check_now()
    assert publisher.step(60.0)
    left = f"SELECT filters FROM {publications} WHERE version IN (1, 2)"
    assert store.query(left) == [("a-kind-of-a-later-version",)]
