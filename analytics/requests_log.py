"""The privacy officer's log of data-subject requests that arrive by e-mail or letter: when each came in,
when it is due (one month later, GDPR art. 12(3)), when it was done, by whom, and what was exported or
erased. Rows are versions of a request (ReplacingMergeTree by id): closing one writes its newer version.
Kept ``analytics.request_log_retention_days`` (the log is the site's proof that it answered)."""

from __future__ import annotations

import calendar
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from .clock import Clock
from .store import Store

KINDS = ("access", "erasure", "objection", "rectification", "portability", "other")


def one_month_after(day: date) -> date:
    """The same day of the next month (the month's last day when it has no such day)."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True, slots=True)
class Request:
    id: UUID
    reference: str
    kind: str
    received: date
    due: date
    done: datetime | None
    handled_by: str
    details: dict[str, Any]


class RequestLog:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def open(self, reference: str, kind: str, received: date, by: str) -> Request:
        if kind not in KINDS:
            raise ValueError(f"a request is one of {', '.join(KINDS)}")
        request = Request(uuid.uuid4(), reference, kind, received, one_month_after(received), None, by, {})
        self._write(request)
        return request

    def close(self, request: Request, by: str, details: dict[str, Any]) -> Request:
        done = Request(
            request.id,
            request.reference,
            request.kind,
            request.received,
            request.due,
            self._clock(),
            by,
            details,
        )
        self._write(done)
        return done

    def requests(self, *, reference: str | None = None, open_only: bool = False) -> list[Request]:
        where = ["1"]
        if reference is not None:
            where.append("reference = {r:String}")
        if open_only:
            where.append("done IS NULL")
        rows = self._store.query(
            "SELECT id, reference, kind, received, due, done, handled_by, details "
            f"FROM {self._store.table('subject_requests')} FINAL WHERE {' AND '.join(where)} "
            "ORDER BY due, received",
            {"r": reference or ""},
        )
        return [Request(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7] or "{}")) for r in rows]

    def _write(self, request: Request) -> None:
        self._store.insert_columns(
            "subject_requests",
            {
                "id": [request.id],
                "reference": [request.reference],
                "kind": [request.kind],
                "received": [request.received],
                "due": [request.due],
                "done": [request.done],
                "handled_by": [request.handled_by],
                "details": [json.dumps(request.details, sort_keys=True)],
                "ts": [self._clock()],
            },
        )
