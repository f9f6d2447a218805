"""The consent ledger: proof of each choice a visitor made, written before the choice is acknowledged."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from uuid import UUID

from .store import Store


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    consent_id: UUID
    previous_id: UUID | None
    ts: datetime
    visitor_id: UUID | None
    categories: tuple[str, ...]
    policy_revision: int
    lang: str
    country: str
    ip_prefix: str
    gpc: bool
    source: str = "banner"


def record_consent(store: Store, record: ConsentRecord) -> None:
    """Insert one ledger row. The table is fsynced on insert, so a return means the proof is on disk."""
    store.insert_columns("consent_ledger", {name: [value] for name, value in asdict(record).items()})
