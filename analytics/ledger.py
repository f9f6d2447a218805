"""The consent ledger: an append-only, hash-chained record of every decision (GDPR art. 7(1): the site must
be able to demonstrate consent).

Every row carries the hash of the row before it in its *chain*, so an edited, deleted or inserted row breaks
the chain and ``verify`` finds it. One writer appends to one chain: a chain starts when a writer first
writes, anchored to the newest row already in the ledger, so only the very first chain of a site starts
from nothing. Rows expire with the ledger's retention; a chain whose oldest rows expired is still whole,
because each row also carries its predecessor's time.

What a visitor read is stored once per distinct text (``consent_texts``), referred to by its hash.

The visitor id in a row can be blanked when the visitor's data is erased: the chain covers a digest of the
id and the consent id, not the id itself, so the proof stays verifiable and becomes pseudonymous.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from .store import Store

GENESIS = "0" * 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Method(StrEnum):
    """How a decision came about."""

    BANNER = "banner"  # the banner's first layer
    SETTINGS = "settings"  # the banner's second layer (per category or service)
    FORM = "form"  # the server-rendered form, without JavaScript
    API = "api"  # the site's own code, through the banner's JS API
    EMBED = "embed"  # "load this content" on an embed's placeholder: one service, nothing else decided
    GPC = "gpc"  # Global Privacy Control (or DNT) refused marketing and personalization
    DEFAULT = "default"  # what an opt-out region has on before a choice
    OBJECTION = "objection"  # an objection to direct marketing or personalisation
    ERASURE = "erasure"  # the visitor's data was erased; the proof stays, pseudonymised


# Decisions the visitor did not make by hand: the banner still asks them.
IMPLICIT_METHODS = frozenset({Method.GPC, Method.DEFAULT})


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One decision, as the middleware hands it to the ledger."""

    consent_id: UUID
    previous_id: UUID | None
    ts: datetime
    visitor_id: UUID | None  # only when analytics is granted
    categories: tuple[str, ...]
    services: tuple[str, ...]
    policy_revision: int
    lang: str
    method: Method
    texts_hash: str  # what the visitor was shown (consent_texts); empty when nothing was shown
    country: str
    ip_prefix: str
    gpc: bool


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """A record placed in its chain: what is stored."""

    record: ConsentRecord
    site: str
    chain: UUID
    seq: int
    prev_hash: str
    prev_ts: datetime
    digest: str  # visitor_digest(): stays when the visitor id is blanked on erasure
    hash: str = ""

    def sealed(self) -> LedgerRow:
        return replace(self, hash=row_hash(self))


COLUMNS = (
    "consent_id",
    "previous_id",
    "ts",
    "visitor_id",
    "categories",
    "services",
    "policy_revision",
    "lang",
    "method",
    "texts_hash",
    "country",
    "ip_prefix",
    "gpc",
    "site",
    "visitor_digest",
    "chain",
    "seq",
    "prev_hash",
    "prev_ts",
    "hash",
)


def visitor_digest(consent_id: UUID, visitor_id: UUID | None) -> str:
    """What the chain covers instead of the visitor id: checkable with the id, useless without it."""
    if visitor_id is None:
        return ""
    return hashlib.sha256(consent_id.bytes + visitor_id.bytes).hexdigest()


def millis(ts: datetime) -> datetime:
    """``ts`` as stored (DateTime64(3), UTC): what the hash covers must survive the round trip."""
    ts = ts.astimezone(UTC)
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def row_hash(row: LedgerRow) -> str:
    r = row.record
    fields = {
        "site": row.site,
        "chain": row.chain.hex,
        "seq": row.seq,
        "prev_hash": row.prev_hash,
        "prev_ts": _iso(row.prev_ts),
        "consent_id": r.consent_id.hex,
        "previous_id": r.previous_id.hex if r.previous_id else "",
        "ts": _iso(r.ts),
        "visitor_digest": row.digest,
        "categories": sorted(r.categories),
        "services": sorted(r.services),
        "policy_revision": r.policy_revision,
        "lang": r.lang,
        "method": str(r.method),
        "texts_hash": r.texts_hash,
        "country": r.country,
        "ip_prefix": r.ip_prefix,
        "gpc": r.gpc,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _iso(ts: datetime) -> str:
    return millis(ts).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Chain:
    """The head of one writer's chain. Not thread-safe: one writer thread owns it."""

    def __init__(self, site: str, chain: UUID) -> None:
        self.site = site
        self.id = chain
        self.seq = 0
        self._anchor: tuple[str, datetime] | None = None
        self._head: tuple[str, datetime] | None = None

    @property
    def anchored(self) -> bool:
        return self._anchor is not None

    def anchor(self, store: Store) -> None:
        """Start from the newest row already in the ledger (from nothing when it is empty)."""
        rows = store.query(
            f"SELECT hash, ts FROM {store.table('consent_ledger')} "
            "WHERE site = {site:String} AND hash != '' ORDER BY ts DESC, seq DESC LIMIT 1",
            {"site": self.site},
        )
        self._anchor = (rows[0][0], rows[0][1]) if rows else (GENESIS, _EPOCH)
        self._head = self._anchor

    def link(self, records: list[ConsentRecord]) -> list[LedgerRow]:
        """Rows for ``records``, chained after the head; ``commit`` makes them the new head once stored."""
        assert self._head is not None, "anchor() first"
        rows = []
        head, seq = self._head, self.seq
        for record in records:
            record = replace(record, ts=millis(record.ts))
            digest = visitor_digest(record.consent_id, record.visitor_id)
            row = LedgerRow(record, self.site, self.id, seq, head[0], head[1], digest).sealed()
            rows.append(row)
            head, seq = (row.hash, record.ts), seq + 1
        return rows

    def commit(self, rows: list[LedgerRow]) -> None:
        if rows:
            self._head = (rows[-1].hash, rows[-1].record.ts)
            self.seq = rows[-1].seq + 1


def insert_rows(store: Store, rows: list[LedgerRow]) -> None:
    """One insert for a whole group of rows; the table is fsynced on insert, so a return means on disk."""
    columns: dict[str, list[object]] = {name: [] for name in COLUMNS}
    for row in rows:
        r = row.record
        values = (
            r.consent_id,
            r.previous_id,
            r.ts,
            r.visitor_id,
            list(r.categories),
            list(r.services),
            r.policy_revision,
            r.lang,
            str(r.method),
            r.texts_hash,
            r.country,
            r.ip_prefix,
            r.gpc,
            row.site,
            row.digest,
            row.chain,
            row.seq,
            row.prev_hash,
            row.prev_ts,
            row.hash,
        )
        for name, value in zip(COLUMNS, values, strict=True):
            columns[name].append(value)
    store.insert_columns("consent_ledger", columns)


def superseded(
    store: Store, *, written_since: datetime | None, given_since: datetime
) -> tuple[list[tuple[UUID, datetime]], datetime | None]:
    """Consent ids replaced by a later decision, with the time of that decision; and a cursor for the next
    call. The first call (``written_since`` None) reads decisions given since ``given_since``; later calls
    read rows the store received since the cursor, so rows written late (replayed from a spool) count too."""
    condition = (
        "written_at >= {since:DateTime64(3, 'UTC')}"
        if written_since is not None
        else "ts >= {since:DateTime64(3, 'UTC')}"
    )
    rows = store.query(
        f"SELECT previous_id, ts, written_at FROM {store.table('consent_ledger')} "
        f"WHERE previous_id IS NOT NULL AND {condition}",
        {"since": written_since or given_since},
    )
    newest = max((row[2] for row in rows), default=None)
    # Rows still being inserted may carry an earlier written_at than the newest one seen: look back a little.
    cursor = _aware(newest) - timedelta(seconds=30) if newest else written_since
    return [(previous, _aware(ts)) for previous, ts, _ in rows], cursor or _aware(given_since)


# -- verification ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Break:
    chain: UUID
    seq: int
    consent_id: UUID | None
    problem: str


@dataclass(frozen=True, slots=True)
class Head:
    """A chain's newest row, as recorded outside the site to catch a rewritten ledger later."""

    chain: UUID
    seq: int
    hash: str
    ts: datetime

    def line(self) -> str:
        return f"{self.chain.hex} {self.seq} {self.hash} {_iso(self.ts)}"

    @classmethod
    def parse(cls, line: str) -> Head:
        chain, seq, digest, ts = line.split()
        return cls(UUID(hex=chain), int(seq), digest, datetime.fromisoformat(ts.replace("Z", "+00:00")))


@dataclass(frozen=True, slots=True)
class Verification:
    rows: int
    chains: int
    unchained: int  # rows written before the ledger was chained (koekje 0.1)
    heads: list[Head]  # each chain's newest row
    breaks: list[Break]

    @property
    def ok(self) -> bool:
        return not self.breaks


def verify(
    store: Store, site: str, now: datetime, retention: timedelta, recorded: Iterable[Head] = ()
) -> Verification:
    """Recompute every row's hash and every link of every chain of ``site``. A missing start of a chain is
    accepted only when the missing rows were due to expire (their successor's ``prev_ts`` says when).

    Someone who can write the database can also recompute every hash after an edit; ``recorded`` heads,
    kept outside the site (``koekje consent verify --save-heads``), catch that: each must still be there,
    unchanged, unless it has expired."""
    selected = ", ".join(COLUMNS)
    result = store.query(
        f"SELECT {selected}, visitor_id FROM {store.table('consent_ledger')} WHERE site = {{site:String}} "
        "ORDER BY chain, seq, ts",
        {"site": site},
    )
    unchained = store.query(
        f"SELECT count() FROM {store.table('consent_ledger')} WHERE hash = ''",
    )[0][0]
    chained = [values for values in result if values[len(COLUMNS) - 1]]
    rows = [_row_from(dict(zip(COLUMNS, values[: len(COLUMNS)], strict=True))) for values in chained]
    chains: dict[UUID, list[LedgerRow]] = {}
    for row in rows:
        chains.setdefault(row.chain, []).append(row)
    hashes = {row.hash for row in rows}
    breaks: list[Break] = []
    heads: list[Head] = []
    starts_from_nothing = []
    expired = now - retention
    for chain, members in sorted(chains.items(), key=lambda item: item[1][0].record.ts):
        heads.append(Head(chain, members[-1].seq, members[-1].hash, members[-1].record.ts))
        first = members[0]
        if first.seq == 0 and first.prev_hash == GENESIS:
            starts_from_nothing.append(first)
        elif first.seq == 0 and first.prev_hash not in hashes and first.prev_ts > expired:
            breaks.append(_break(first, "anchored to a row that is not in the ledger (deleted?)"))
        elif first.seq > 0 and first.prev_ts > expired:
            breaks.append(_break(first, f"rows 0-{first.seq - 1} of this chain are missing (deleted?)"))
        previous: LedgerRow | None = None
        for row in members:
            if row_hash(row) != row.hash:
                breaks.append(_break(row, "the row does not match its hash (edited?)"))
            if previous is not None:
                if row.seq == previous.seq:
                    breaks.append(_break(row, "two rows claim this place in the chain (inserted?)"))
                elif row.seq != previous.seq + 1:
                    missing = f"{previous.seq + 1}-{row.seq - 1}"
                    breaks.append(_break(row, f"rows {missing} before this one are missing (deleted?)"))
                elif row.prev_hash != previous.hash:
                    breaks.append(_break(row, "does not follow from the row before it (inserted or edited?)"))
            previous = row
    for extra in starts_from_nothing[1:]:
        breaks.append(_break(extra, "a second chain that starts from nothing (inserted?)"))
    breaks += _visitor_ids_and_texts(store, rows, [values[-1] for values in chained])
    placed = {(row.chain, row.seq): row.hash for row in rows}
    for head in recorded:
        found = placed.get((head.chain, head.seq))
        if found != head.hash and (found is not None or head.ts > expired):
            problem = "is gone" if found is None else "has changed"
            breaks.append(
                Break(head.chain, head.seq, None, f"a head recorded earlier {problem} (rewritten?)")
            )
    return Verification(len(rows), len(chains), int(unchained), heads, breaks)


def _visitor_ids_and_texts(
    store: Store, rows: list[LedgerRow], visitor_ids: list[UUID | None]
) -> list[Break]:
    """What the chain covers only by a hash, checked against what is stored beside it. Found by a helper:
    the texts a visitor was shown could be edited, and another visitor's id written into a decision (whose
    reference then copied and erased that visitor's data), and the ledger still verified."""
    breaks = []
    for row, visitor_id in zip(rows, visitor_ids, strict=True):
        if visitor_id is not None and visitor_digest(row.record.consent_id, visitor_id) != row.digest:
            breaks.append(_break(row, "its visitor id is not the one the chain covers (changed?)"))
    stored: dict[str, bool] = {}  # each text's hash: whether every row stored under it matches it
    for digest, body in store.query(f"SELECT hash, body FROM {store.table('consent_texts')}"):
        matches = hashlib.sha256(body.encode()).hexdigest() == digest
        stored[digest] = stored.get(digest, True) and matches
    said: set[str] = set()
    for row in rows:
        digest = row.record.texts_hash
        if not digest or digest in said or stored.get(digest, False):
            continue
        said.add(digest)  # (once per text, at the first decision that refers to it)
        problem = "do not match their hash (edited?)" if digest in stored else "are not stored (deleted?)"
        breaks.append(_break(row, f"the texts it says the visitor was shown {problem}"))
    return breaks


def _break(row: LedgerRow, problem: str) -> Break:
    return Break(row.chain, row.seq, row.record.consent_id, problem)


def _row_from(values: dict[str, object]) -> LedgerRow:
    record = ConsentRecord(
        consent_id=values["consent_id"],  # type: ignore[arg-type]
        previous_id=values["previous_id"],  # type: ignore[arg-type]
        ts=_aware(values["ts"]),  # type: ignore[arg-type]
        visitor_id=None,
        categories=tuple(values["categories"]),  # type: ignore[arg-type]
        services=tuple(values["services"]),  # type: ignore[arg-type]
        policy_revision=int(values["policy_revision"]),  # type: ignore[call-overload]
        lang=str(values["lang"]),
        method=values["method"],  # type: ignore[arg-type]  # as stored: the hash covers the exact text
        texts_hash=str(values["texts_hash"]),
        country=str(values["country"]),
        ip_prefix=str(values["ip_prefix"]),
        gpc=bool(values["gpc"]),
    )
    return LedgerRow(
        record,
        str(values["site"]),
        values["chain"],  # type: ignore[arg-type]
        int(values["seq"]),  # type: ignore[call-overload]
        str(values["prev_hash"]),
        _aware(values["prev_ts"]),  # type: ignore[arg-type]
        str(values["visitor_digest"]),
        str(values["hash"]),
    )


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


# -- one visitor's history ---------------------------------------------------------------------------------

_MAX_HISTORY = 1000


@dataclass(frozen=True, slots=True)
class Entry:
    """One decision as ``koekje consent show`` prints it."""

    consent_id: UUID
    previous_id: UUID | None
    ts: datetime
    method: str
    categories: tuple[str, ...]
    services: tuple[str, ...]
    policy_revision: int
    lang: str
    texts_hash: str
    country: str
    ip_prefix: str
    gpc: bool
    visitor_id: UUID | None


_ENTRY_COLUMNS = (
    "consent_id, previous_id, ts, method, categories, services, policy_revision, lang, texts_hash, country, "
    "ip_prefix, gpc, visitor_id"
)


def history(store: Store, consent_id: UUID) -> list[Entry]:
    """Every decision linked to ``consent_id`` (the decisions it replaced and those that replaced it),
    oldest first. Empty when the id is not in the ledger."""
    table = store.table("consent_ledger")

    def one(where: str, value: UUID) -> Entry | None:
        rows = store.query(
            f"SELECT {_ENTRY_COLUMNS} FROM {table} WHERE {where} = {{id:UUID}} ORDER BY ts LIMIT 1",
            {"id": value},
        )
        if not rows:
            return None
        (
            cid,
            previous,
            ts,
            method,
            categories,
            services,
            revision,
            lang,
            texts_hash,
            country,
            net,
            gpc,
            vid,
        ) = rows[0]
        return Entry(
            cid, previous, _aware(ts), method, tuple(categories), tuple(services), revision, lang, texts_hash,
            country, net, gpc, vid,
        )  # fmt: skip

    start = one("consent_id", consent_id)
    if start is None:
        return []
    entries = [start]
    while entries[0].previous_id is not None and len(entries) < _MAX_HISTORY:
        earlier = one("consent_id", entries[0].previous_id)
        if earlier is None:
            break  # expired, or erased
        entries.insert(0, earlier)
    while len(entries) < _MAX_HISTORY:
        later = one("previous_id", entries[-1].consent_id)
        if later is None:
            break
        entries.append(later)
    return entries


def shown_texts(store: Store, texts_hash: str) -> tuple[str, str] | None:
    """(language, content) of what the banner showed, by its hash."""
    rows = store.query(
        f"SELECT lang, body FROM {store.table('consent_texts')} WHERE hash = {{hash:String}} LIMIT 1",
        {"hash": texts_hash},
    )
    return (rows[0][0], rows[0][1]) if rows else None
