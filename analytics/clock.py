"""Time as a parameter: every component takes a clock so tests pin time instead of mocking it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The default clock: an aware datetime in UTC."""
    return datetime.now(UTC)
