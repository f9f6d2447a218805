"""The dashboard's reports on a real store: the cell rule (a day of a segment counts only with enough
visitors), what it means for differencing, filters checked against a count made here in Python, and each
report's numbers."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koekje.analytics import PageView, PageViewSink, Store
from koekje.analytics import reports as r
from koekje.analytics.aggregates import draw_salts
from koekje.analytics.reports import Filters, Selection

DAY = date(2026, 11, 2)
UTC_ZONE = ZoneInfo("UTC")
K = 5


def put(store: Store, views: Iterable[PageView]) -> list[PageView]:
    views = list(views)
    draw_salts(store, {v.ts.date() for v in views}, lambda: datetime.now(UTC))  # as the loader does
    PageViewSink(store).write(views)
    return views


def view(
    day: date,
    visitor: uuid.UUID,
    topic: str = "implants",
    *,
    path: str | None = None,
    country: str = "NL",
    device: str = "desktop",
    minute: int = 0,
    entry: bool = True,
    referrer: str = "",
    utm: tuple[str, str, str] = ("", "", ""),
) -> PageView:
    ts = datetime(day.year, day.month, day.day, 10, tzinfo=UTC) + timedelta(minutes=minute)
    return PageView(
        ts, "default", visitor, path or f"/{topic}", (topic,) if topic else (), referrer, country,
        "192.0.2.0", utm_source=utm[0], utm_medium=utm[1], utm_campaign=utm[2], device=device,
        visit_start=int(ts.timestamp()) - minute * 60, entry=entry,
    )  # fmt: skip


def people(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


def select(first: date, last: date | None = None, **filters: str) -> Selection:
    return Selection("default", first, last or first, UTC_ZONE, K, Filters(**filters))


def topics(store: Store, first: date, last: date | None = None, **filters: str) -> dict[str, tuple[int, ...]]:
    table = r.topics(store, select(first, last, **filters))
    return {row[0]: tuple(row[1:3]) for row in table.rows}  # page views, visitors


def test_a_day_with_too_few_visitors_counts_nowhere(store: Store) -> None:
    second = DAY + timedelta(days=1)
    put(store, [view(DAY, v) for v in people(5)])  # shown: 5 visitors
    put(
        store, [view(second, v) for v in people(2) for _ in range(3)]
    )  # 2 visitors, 6 views: a cell too small
    put(store, [view(second, v, "prices") for v in people(5)])
    assert topics(store, DAY) == {"implants": (5, 5)}
    # On the second day the total (7 visitors) is shown; had prices been shown beside it, the total minus
    # prices would have given away the two implants readers. So prices is hidden as well.
    assert r.overview(store, select(second)).totals.visitors == 7
    assert topics(store, second) == {}
    # Over both days, implants is still 5: the small day counts nowhere, so subtracting the first day's
    # report from the two days' reveals nothing about the two visitors of the second.
    assert topics(store, DAY, second) == {"implants": (5, 5)}
    totals = r.overview(store, select(DAY, second)).totals
    assert (totals.views, totals.visitors) == (5 + 11, 5 + 7)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["a", "b", "c"]), st.integers(1, 8)), max_size=12),
    st.integers(0, 6),
)
def test_reports_add_up_over_days_so_differencing_reveals_nothing(
    store: Store, cells: list[tuple[int, str, int]], split: int
) -> None:
    """Any report over days first..last is the sum of the reports over first..m and m+1..last, for every
    table and total: a difference of two reports is itself a report, whose cells all had enough visitors."""
    store.command(f"TRUNCATE TABLE {store.table('page_views')}")
    store.command(f"TRUNCATE TABLE {store.table('daily_stats')}")
    views = [view(DAY + timedelta(days=d), v, topic) for d, topic, n in cells for v in people(n)]
    if views:
        put(store, views)
    first, last, middle = DAY, DAY + timedelta(days=6), DAY + timedelta(days=split)
    whole, left = topics(store, first, last), topics(store, first, middle)
    right = topics(store, middle + timedelta(days=1), last) if split < 6 else {}
    for topic in {*whole, *left, *right}:
        summed = tuple(a + b for a, b in zip(left.get(topic, (0, 0)), right.get(topic, (0, 0)), strict=True))
        assert whole.get(topic, (0, 0)) == summed
    # And each shown number is what the counted cells add up to, worked out here: a cell counts with K or
    # more visitors, except the smallest such cell of a day whose hidden cells hold 1 to K-1 visitors.
    per_day: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for d, topic, n in cells:
        per_day[d][topic] += n
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for day in per_day.values():
        shown = sorted((n, topic) for topic, n in day.items() if n >= K)
        if 0 < sum(n for n in day.values() if n < K) < K:
            shown = shown[1:]
        for n, topic in shown:
            expected[topic][0] += n
            expected[topic][1] += n
    assert whole == {t: tuple(v) for t, v in expected.items()}


def test_filters_give_what_a_count_by_hand_gives(store: Store) -> None:
    rows = put(
        store,
        [
            *(view(DAY, v, "implants", country="NL", device="mobile") for v in people(6)),
            *(view(DAY, v, "implants", country="NL", device="desktop") for v in people(5)),
            *(view(DAY, v, "implants", country="BE", device="mobile") for v in people(5)),
            *(view(DAY, v, "prices", country="NL", device="mobile") for v in people(7)),
            *(view(DAY + timedelta(days=1), v, "prices", country="NL", device="mobile") for v in people(4)),
        ],
    )

    def by_hand(**wanted: str) -> tuple[int, int]:
        """Views and visitors of the days on which the filtered segment has K or more visitors."""
        days: dict[date, list[PageView]] = defaultdict(list)
        for row in rows:
            fields = {"topic": row.topics[0], "country": row.country, "device": row.device}
            if all(fields[name] == value for name, value in wanted.items()):
                days[row.ts.date()].append(row)
        shown = [day for day in days.values() if len({v.visitor_id for v in day}) >= K]
        return sum(len(day) for day in shown), sum(len({v.visitor_id for v in day}) for day in shown)

    last = DAY + timedelta(days=1)
    wanted_ones: list[dict[str, str]] = [
        {},
        {"country": "NL"},
        {"device": "mobile"},
        {"topic": "implants", "country": "NL"},
        {"country": "NL", "device": "mobile"},
        {"topic": "prices", "device": "mobile"},
    ]
    for wanted in wanted_ones:
        totals = r.overview(store, select(DAY, last, **wanted)).totals
        assert (totals.views, totals.visitors) == by_hand(**wanted), wanted
    # The filtered tables agree with the same counts.
    nl = {row[0]: (row[1], row[2]) for row in r.countries(store, select(DAY, last, topic="implants")).rows}
    assert nl == {
        "NL": by_hand(topic="implants", country="NL"),
        "BE": by_hand(topic="implants", country="BE"),
    }
    assert r.pages(store, select(DAY, last, country="NL", device="mobile")).rows == [
        ("/prices", 7, 7),
        ("/implants", 6, 6),
    ]


def test_pages_entries_exits_referrers_and_campaigns(store: Store) -> None:
    visitors = people(5)
    put(
        store,
        [
            *(view(DAY, v, "implants", minute=0, referrer="duckduckgo.com") for v in visitors),
            *(view(DAY, v, "prices", minute=2, entry=False) for v in visitors),
            *(view(DAY, v, "contact", minute=5, entry=False) for v in visitors),
            *(view(DAY, v, "implants", utm=("nieuwsbrief", "email", "najaar")) for v in people(5)),
        ],
    )
    sel = select(DAY)
    assert r.pages(store, sel).rows[0] == ("/implants", 10, 10)
    assert r.entry_pages(store, sel).rows == [("/implants", 10, 10)]
    assert sorted(r.exit_pages(store, sel).rows) == [("/contact", 5, 5), ("/implants", 5, 5)]
    assert r.campaigns(store, sel).rows == [("nieuwsbrief", "email", "najaar", 5, 5)]
    sources = r.sources(store, sel)  # per page view: the later pages of a visit have no referrer
    assert sources.rows == [("", 10, 5), ("duckduckgo.com", 5, 5), ("nieuwsbrief", 5, 5)]
    assert r.overview(store, sel).totals.views_per_visit == 2.0


def test_co_interest_and_rising_topics(store: Store) -> None:
    both, only = people(6), people(6)
    put(
        store,
        [*(view(DAY, v, t) for v in both for t in ("implants", "prices")), *(view(DAY, v) for v in only)],
    )
    put(store, [view(DAY - timedelta(days=1), v, "implants") for v in people(6)])
    table = r.co_interest(store, select(DAY))
    assert ("prices", "implants", 6, 1.0) in table.rows and ("implants", "prices", 6, 0.5) in table.rows
    ranked = r.topics(store, select(DAY))
    assert {row[0]: row[-1] for row in ranked.rows} == {"implants": 1.0, "prices": None}  # +100%, and new
    assert [topic for topic, _, _ in r.rising(ranked)] == ["prices", "implants"]


def test_realtime_counts_only_the_last_half_hour_and_only_enough_people(store: Store) -> None:
    now = datetime(2026, 11, 2, 10, 40, tzinfo=UTC)
    put(store, [view(DAY, v, minute=15) for v in people(4)])  # 10:15: within 30 minutes of 10:40
    put(store, [view(DAY, v, minute=5) for v in people(3)])  # 10:05: too long ago
    assert r.realtime(store, "default", now, 5) is None
    assert r.realtime(store, "default", now, 4) == 4


# -- found when tried as an attacker would ---------------------------------------------------------------


def test_a_filtered_report_does_not_give_away_the_rest(store: Store) -> None:
    """The overview minus the mobile view used to be the one desktop visitor (1 visitor, 3 views)."""
    put(store, [view(DAY, v, device="mobile") for v in people(5)])
    lone = people(1)[0]
    put(store, [view(DAY, lone, device="desktop", minute=m, path=f"/p{m}") for m in range(3)])
    everything = r.overview(store, select(DAY)).totals
    mobile = r.overview(store, select(DAY, device="mobile")).totals
    assert (everything.views, everything.visitors) == (8, 6)
    assert r.devices(store, select(DAY)).rows == []  # mobile is hidden with desktop...
    assert (mobile.views, mobile.visitors) == (0, 0)  # ...and so is the day in the mobile view
    assert r.pages(store, select(DAY, device="mobile")).rows == []


def test_a_two_way_table_does_not_give_away_a_cell_of_the_other_way(store: Store) -> None:
    """Countries (NL: 8 views) minus topic by country (t1, NL: 5 views) used to be the one t2 reader."""
    put(store, [view(DAY, v, "t1") for v in people(5)])
    lone = people(1)[0]
    put(store, [view(DAY, lone, "t2", minute=m, path=f"/t2/{m}") for m in range(3)])
    assert r.countries(store, select(DAY)).rows == [("NL", 8, 6)]
    assert r.topic_by(store, select(DAY), r.COUNTRY).rows == []


def test_pages_with_several_topics_do_not_hide_a_lone_reader(store: Store) -> None:
    """ta and tc hidden held six visitors, yet the total minus tb was the one tc reader (3 views)."""
    put(
        store,
        [
            PageView(
                datetime(2026, 11, 2, 10, tzinfo=UTC), "default", v, "/x", ("ta", "tb"), "", "NL", "192.0.2.0"
            )
            for v in people(5)
        ],
    )
    lone = people(1)[0]
    put(store, [view(DAY, lone, "tc", minute=m, path=f"/y{m}") for m in range(3)])
    shown = topics(store, DAY)
    assert "tc" not in shown and sum(views for views, _ in shown.values()) in (0, 10)  # never 5: 8 - 5 = 3


def test_direct_visits_are_gated_before_they_are_left_out(store: Store) -> None:
    """Topic t (8 views) minus (t, google.com) (5 views) used to be the one direct visitor."""
    put(store, [view(DAY, v, "t", referrer="google.com") for v in people(5)])
    lone = people(1)[0]
    put(store, [view(DAY, lone, "t", minute=m, path=f"/t/{m}") for m in range(3)])
    assert r.topic_sources(store, select(DAY)).rows == []


def test_consent_rates_count_people_not_choices(store: Store) -> None:
    """Five choices by one person were enough to show that person's choices as rates. (People are told
    apart by their choices' lineage: each new choice names the one it replaces.)"""

    def choices(people: int, categories: list[str], times: int = 1) -> None:
        for _ in range(people):
            previous = None
            for n in range(times):
                consent_id = uuid.uuid4()
                store.insert_columns(
                    "consent_ledger",
                    {
                        "consent_id": [consent_id],
                        "previous_id": [previous],
                        "ts": [datetime(2026, 11, 2, 9, n, tzinfo=UTC)],
                        "categories": [categories],
                        "method": ["banner"],
                        "site": ["default"],
                        "chain": [uuid.UUID(int=1)],  # the loader's chain: one for everyone
                    },
                )
                previous = consent_id

    choices(1, ["necessary", "analytics"], times=5)
    assert r.overview(store, select(DAY)).consent_rates == []
    choices(4, ["necessary"])  # five people now; one allowed analytics
    summary = r.overview(store, select(DAY))
    assert summary.decisions == 5
    assert summary.consent_rates == [("necessary", 1.0)]  # "analytics 20%" would be one person's choice
    choices(9, ["necessary", "analytics"])  # 10 allowed it, 4 did not
    assert dict(r.overview(store, select(DAY)).consent_rates) == {"necessary": 1.0}
    choices(1, ["necessary"])  # and now 5 did not
    assert dict(r.overview(store, select(DAY)).consent_rates) == {"necessary": 1.0, "analytics": 10 / 15}


def test_a_two_way_table_does_not_give_away_a_cell_alone_in_its_row_and_column(store: Store) -> None:
    """Found on a second try: the overview (27 visitors, 30 views) minus topic by country (26, 26) was the
    one visitor from Iceland who read z four times. The day itself is a parent of every cell too."""
    put(store, [*(view(DAY, v, "x") for v in people(10)), *(view(DAY, v, "y") for v in people(10))])
    put(store, [view(DAY, v, "x", country="DE") for v in people(6)])
    lone = people(1)[0]
    put(store, [view(DAY, lone, "z", country="IS", minute=m, path=f"/z{m}") for m in range(4)])
    total = r.overview(store, select(DAY)).totals
    shown = r.topic_by(store, select(DAY), r.COUNTRY).rows
    left = total.visitors - sum(row[3] for row in shown)
    assert left == 0 or left >= K, shown


def test_a_filtered_table_is_a_slice_of_the_two_way_table(store: Store) -> None:
    """Found on a second try: topics showed x = 12 and, with country=NL, x = 10: two readers elsewhere."""
    put(
        store,
        [*(view(DAY, v, "x") for v in people(10)), *(view(DAY, v, "x", country="DE") for v in people(2))],
    )
    put(store, [view(DAY, v, "y", country="DE") for v in people(10)])
    everywhere, nl = topics(store, DAY), topics(store, DAY, country="NL")
    if "x" in everywhere and "x" in nl:
        assert everywhere["x"][1] - nl["x"][1] in (0, *range(K, 100))


def test_hidden_page_views_of_people_who_are_also_shown(store: Store) -> None:
    """Found on a second try: eleven read the home page and one of them also read hiv four times; the
    visitors outside the shown cells were none, yet 15 views minus home's 11 were that one person's."""
    readers = people(11)
    put(store, [view(DAY, v, "home") for v in readers])
    put(store, [view(DAY, readers[0], "hiv", minute=m, path=f"/hiv{m}") for m in range(1, 5)])
    assert topics(store, DAY) == {}


def test_co_interest_is_checked_both_ways(store: Store) -> None:
    """Found on a second try: (a, b) both = 10 beside b = 12 gave away the two who read b alone."""
    both = people(10)
    put(
        store,
        [*(view(DAY, v, t) for v in both for t in ("a", "b")), *(view(DAY, v, "a") for v in people(10))],
    )
    put(store, [view(DAY, v, "b") for v in people(2)])
    assert r.co_interest(store, select(DAY)).rows == []


def test_the_same_cells_are_left_out_whichever_way_a_table_is_asked_for(store: Store) -> None:
    """Found by a helper: devices with a topic filter and topic by device gated the same cells in another
    order, so a tie between two cells was broken the other way and each showed a cell the other hid (one
    number, two answers; and two tables that each give away a different cell)."""
    put(store, [view(DAY, v, "x", device="mobile") for v in people(5)])
    put(store, [view(DAY, v, "y", device="desktop") for v in people(5)])
    put(store, [view(DAY, v, "z", device="tablet") for v in people(2)])  # small: one of the two must go
    filtered = {row[0] for row in r.devices(store, select(DAY, topic="x")).rows}
    two_way = {row[1] for row in r.topic_by(store, select(DAY), r.DEVICE).rows if row[0] == "x"}
    assert filtered == two_way
