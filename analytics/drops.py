"""Every reason an event or a decision is not kept, in one place: each drop is counted under one of these,
so the counts (and the metrics built on them) say exactly what was lost and why."""

from __future__ import annotations

from enum import StrEnum


class Drop(StrEnum):
    # capture: not something to record
    NOT_A_PAGE = "not_a_page"  # not a GET of an HTML page answered 200
    PREFETCH = "prefetch"  # a speculative load the visitor may never see
    EXCLUDED_PATH = "excluded_path"  # analytics.exclude_paths
    NO_CONSENT = "no_consent"
    NO_VISITOR_ID = "no_visitor_id"
    ERASED = "erased"  # the visitor asked to be forgotten; a cookie from before still carries their id
    BAD_ADDRESS = "bad_address"  # no address to truncate
    BOT = "bot"  # a crawler, by its user agent
    BAD_BEACON = "bad_beacon"  # a collect request that is not what the banner sends (counted per event)
    INVALID_EVENT = (
        "invalid_event"  # the write buffer could not make a row of it (the rest of its batch is kept)
    )
    # the write buffer and the spool: accepted, then lost
    QUEUE_FULL = "queue_full"
    RECORDER_STOPPED = "recorder_stopped"
    SPOOL_FULL = "spool_full"
    SPOOL_ERROR = "spool_error"  # the disk refused
    WRITE_ERROR = "write_error"  # anything else the sink raised
    # consent decisions that could not be kept
    LEDGER_STOPPED = "ledger_stopped"
    LEDGER_SPOOL_ERROR = "ledger_spool_error"
