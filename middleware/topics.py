"""Which topics a page is about: path rules from the configuration, plus labels the app sets on
``request.state.koekje_topics``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

MAX_TOPICS = 10
TOPIC_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_MAX_DEPTH = 16
_KNOWN_PATHS = 4096


class TopicRules:
    """Maps a path to the topics whose prefixes contain it, at a segment boundary: ``/cursussen`` covers
    ``/cursussen`` and ``/cursussen/x`` but not ``/cursussenaanbod``. Nested prefixes add up."""

    def __init__(self, topics: Mapping[str, Sequence[str]]) -> None:
        self._by_prefix: dict[str, tuple[str, ...]] = {}
        # A site's pages are few and asked for over and over: each path's answer is remembered (bounded).
        self._known: dict[str, tuple[str, ...]] = {}
        for topic, prefixes in topics.items():
            for prefix in prefixes:
                key = prefix.rstrip("/") or "/"
                self._by_prefix[key] = (*self._by_prefix.get(key, ()), topic)

    def __call__(self, path: str) -> tuple[str, ...]:
        if not self._by_prefix:
            return ()
        known = self._known.get(path)
        if known is None:
            known = self._match(path)
            if len(self._known) >= _KNOWN_PATHS:
                self._known.clear()
            self._known[path] = known
        return known

    def _match(self, path: str) -> tuple[str, ...]:
        found: list[str] = list(self._by_prefix.get("/", ()))
        end = 0
        for _ in range(_MAX_DEPTH):
            end = path.find("/", end + 1)
            found.extend(self._by_prefix.get(path if end < 0 else path[:end], ()))
            if end < 0:
                break
        return tuple(dict.fromkeys(found))


def app_topics(value: object) -> tuple[tuple[str, ...], int]:
    """The valid topic labels the app set, and how many it set that were not valid (ignored, counted)."""
    if value is None:
        return (), 0
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        return (), 1
    valid = [topic for topic in value if isinstance(topic, str) and TOPIC_NAME.fullmatch(topic)]
    return tuple(valid[:MAX_TOPICS]), len(value) - len(valid[:MAX_TOPICS])
