"""Settings of the analytics side, built by the configuration loader (or directly, in code and tests)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_CLUSTER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")  # goes into SQL: nothing else


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where and how long analytics data is kept.

    ``dsn`` is anything ``clickhouse_connect.get_client(dsn=...)`` accepts: ``chdb:///abs/dir`` for the
    embedded engine, ``https://user:password@host:8443`` for a ClickHouse server.
    """

    dsn: str
    database: str = "koekje"
    raw_retention_days: int = 730
    ledger_retention_days: int = 1095
    aggregate_retention_days: int = 1825
    # The site's time zone: the daily statistics count its days.
    timezone: str = "UTC"
    request_log_retention_days: int = 1095
    # A ClickHouse cluster whose replicas all hold koekje's data (its name in the servers' remote_servers);
    # "" for one server or the embedded store. See ``koekje.analytics.store`` (``Store.schema``).
    cluster: str = ""

    def __post_init__(self) -> None:
        if self.cluster and not _CLUSTER.fullmatch(self.cluster):
            raise ValueError(f"analytics.cluster {self.cluster[:70]!r} is not a cluster name")
        if self.cluster and self.embedded:
            raise ValueError(
                "analytics.cluster needs a ClickHouse server (analytics.dsn or KOEKJE_CLICKHOUSE_DSN): the "
                "embedded store is one process on one machine"
            )
        if not _IDENTIFIER.fullmatch(self.database):
            raise ValueError(
                f"analytics.database {self.database!r} is not a plain identifier: "
                "use letters, digits and underscores, starting with a letter"
            )
        for name in (
            "raw_retention_days",
            "ledger_retention_days",
            "aggregate_retention_days",
            "request_log_retention_days",
        ):
            days = getattr(self, name)
            if not 1 <= days <= 3650:
                raise ValueError(f"analytics.{name} must be between 1 and 3650 days, not {days}")
        if not _ZONE.fullmatch(self.timezone):
            raise ValueError(f"site.timezone {self.timezone[:40]!r} is not a time zone name")
        try:
            ZoneInfo(self.timezone)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(
                f"site.timezone {self.timezone!r} is not a time zone name such as 'Europe/Amsterdam'"
            ) from None
        if self.aggregate_retention_days < self.raw_retention_days:
            raise ValueError(
                "analytics.aggregate_retention_days must be at least analytics.raw_retention_days: the "
                "anonymous statistics are what remains when raw page views expire"
            )

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb:")


@dataclass(frozen=True, slots=True)
class RecorderSettings:
    """The write buffer between the request path and the store."""

    queue_size: int = 100_000
    batch_size: int = 10_000
    flush_interval: float = 0.25

    def __post_init__(self) -> None:
        if self.queue_size < 1 or self.batch_size < 1:
            raise ValueError("analytics.queue_size and analytics.batch_size must be positive")
        if not 0.01 <= self.flush_interval <= 60:
            raise ValueError("analytics.flush_interval_seconds must be between 0.01 and 60")
