"""Personalization: what a visitor who allows it has read, so the site can stop showing them the same thing.

``scope["koekje"].interests()`` gives the visitor's top topics and ``seen(path)`` whether they viewed a page,
answered from this process's memory: fed by every page the middleware serves them, never a query, never
stored. A visitor without personalization consent has no profile; withdrawing it forgets the profile at
once. Bounded: a fixed number of visitors (the least recently active go first), each with a fixed number
of pages (kept as hashes, not paths) and topics.

With several worker processes each keeps its own: a visitor's browser usually stays on one connection, and
so one worker, for a visit; what another worker saw is missing, and a restart starts afresh. That is the
price of never querying on the request path (and of never storing a personalization profile at all).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Container, Sequence
from uuid import UUID

from .consent import Consent

MAX_PROFILES = 5_000
MAX_PAGES = 50  # per visitor: the most recent
MAX_TOPICS = 20  # per visitor
MAX_PATH = 1024


def profile_key(consent: Consent | None) -> UUID | None:
    """Whose profile a consent names: none without personalization, else the decision's own id. Never the
    visitor id: a profile must become unreachable with the decision that allowed it, also in another worker
    and for a page still being served when personalization was withdrawn (``carry`` moves it to a new
    decision that keeps personalization, in the worker that records that decision)."""
    if consent is None or not consent.allows("personalization"):
        return None
    return consent.id


class _Profile:
    __slots__ = ("pages", "topics")

    def __init__(self) -> None:
        self.topics: Counter[str] = Counter()
        self.pages: OrderedDict[int, None] = OrderedDict()  # hash(path), oldest first


class Profiles:
    def __init__(
        self, capacity: int = MAX_PROFILES, erased: Callable[[], Container[UUID]] | None = None
    ) -> None:
        self._capacity = capacity
        # The visitor ids whose data was erased (every worker's erasure notes): their profiles are
        # forgotten and not fed. Found by a helper: after an erasure by the privacy officer (which makes no
        # new decision), the profile built from the erased page views kept being served.
        self._erased = erased
        self._profiles: OrderedDict[UUID, _Profile] = OrderedDict()
        # Fed on the event loop, read by sync endpoints in threads: a Counter must not change while read.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._profiles)

    def _key(self, consent: Consent | None) -> UUID | None:
        """The profile's key, or None; an erased visitor's profile is forgotten here."""
        key = profile_key(consent)
        if key is None or self._erased is None:
            return key
        assert consent is not None
        if consent.visitor_id is not None and consent.visitor_id in self._erased():
            with self._lock:
                self._profiles.pop(key, None)
            return None
        return key

    def feed(self, consent: Consent | None, path: str, topics: Sequence[str]) -> None:
        key = self._key(consent)
        if key is None:
            return
        with self._lock:
            profile = self._profiles.get(key)
            if profile is None:
                profile = self._profiles[key] = _Profile()
                if len(self._profiles) > self._capacity:
                    self._profiles.popitem(last=False)
            else:
                self._profiles.move_to_end(key)
            pages, page = profile.pages, hash(path[:MAX_PATH])
            pages[page] = None
            pages.move_to_end(page)
            if len(pages) > MAX_PAGES:
                pages.popitem(last=False)
            for topic in topics:
                if topic in profile.topics or len(profile.topics) < MAX_TOPICS:
                    profile.topics[topic] += 1

    def interests(self, consent: Consent | None, n: int) -> list[str]:
        key = self._key(consent)
        with self._lock:
            profile = self._profiles.get(key) if key is not None else None
            return [topic for topic, _ in profile.topics.most_common(n)] if profile is not None else []

    def seen(self, consent: Consent | None, path: str) -> bool:
        key = self._key(consent)
        with self._lock:
            profile = self._profiles.get(key) if key is not None else None
            return profile is not None and hash(path[:MAX_PATH]) in profile.pages

    def carry(self, before: Consent | None, after: Consent) -> None:
        """A new decision: the profile follows the visitor to it, or is forgotten when it withdraws
        personalization."""
        old, new = profile_key(before), profile_key(after)
        if old is None or old == new:
            return
        with self._lock:
            profile = self._profiles.pop(old, None)
            if new is not None and profile is not None:
                self._profiles[new] = profile
