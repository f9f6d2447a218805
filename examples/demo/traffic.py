"""A month of generated visits, so the demo dashboard has something to show. Clearly synthetic: the
addresses are from the documentation ranges (RFC 5737) and the generator is seeded."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from koekje.analytics import PageView, PageViewSink, Store
from koekje.analytics.aggregates import draw_salts
from koekje.middleware.topics import TopicRules

from .site import LANGS, PAGES

_COUNTRIES = ("NL",) * 14 + ("BE",) * 4 + ("DE", "")
_PREFIXES = ("192.0.2.0", "198.51.100.0", "203.0.113.0")
_DEVICES = ("desktop",) * 5 + ("mobile",) * 4 + ("tablet",)
_VISITS = (1, 1, 1, 2, 2, 3, 5)  # visits per visitor
_REFERRERS = ("",) * 6 + ("www.google.com", "www.google.nl", "www.linkedin.com", "duckduckgo.com")


def generate(
    rules: TopicRules, site: str, now: datetime, *, visitors: int = 600, days: int = 30, seed: int = 7
) -> list[PageView]:
    """Page views of ``visitors`` visitors over the ``days`` before ``now``, each with a topic preference."""
    rng = random.Random(seed)  # noqa: S311 (reproducible sample data, not security)
    paths = [(page, page.path(lang)) for page in PAGES for lang in LANGS]
    events = []
    for _ in range(visitors):
        visitor = uuid.UUID(int=rng.getrandbits(128), version=4)
        favourite = rng.choice([page.key for page in PAGES if page.in_nav])
        country, prefix = rng.choice(_COUNTRIES), rng.choice(_PREFIXES)
        device = rng.choice(_DEVICES)
        starts = sorted(
            now - timedelta(seconds=rng.uniform(60, days * 86400)) for _ in range(rng.choice(_VISITS))
        )
        for visit, ts in enumerate(starts):
            referrer = rng.choice(_REFERRERS)
            start = int(ts.timestamp())
            for view in range(rng.randint(1, 6)):
                page, path = rng.choice(
                    [p for p in paths if p[0].key == favourite or p[0].section == favourite] * 3 + paths
                )
                topics = rules(path) + page.topics
                events.append(
                    PageView(
                        ts,
                        site,
                        visitor,
                        path,
                        tuple(dict.fromkeys(topics)),
                        referrer,
                        country,
                        prefix,
                        device=device,
                        visit_start=start,
                        entry=view == 0,
                        returning=visit > 0,
                    )
                )
                ts += timedelta(seconds=rng.uniform(10, 240))
                referrer = ""
    return [event for event in events if event.ts <= now]


def fill_if_empty(store: Store, rules: TopicRules, site: str, now: datetime) -> int:
    """Add the generated month when the store has no page views yet; the number of views added."""
    if store.query(f"SELECT count() FROM {store.table('page_views')}")[0][0]:
        return 0
    events = generate(rules, site, now)
    # Each day its salt, so that the anonymous daily statistics count these visitors too.
    draw_salts(store, {event.ts.date() for event in events}, lambda: now)
    PageViewSink(store).write(events)
    return len(events)
