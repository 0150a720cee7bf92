"""Storage behind one interface: SQLite (default) and PostgreSQL."""

from .base import (
    CheckpointRow, ExecutionRow, ExecutionUpdate, JournalAppend, LeaseLostError, OutboxEvent, PlanImmutableError, Store, StoreError,
    StoredJournalRecord, TokenRow, WriteBatch, open_store,
)

__all__ = [
    "CheckpointRow", "ExecutionRow", "ExecutionUpdate", "JournalAppend", "LeaseLostError", "OutboxEvent", "PlanImmutableError", "Store",
    "StoreError", "StoredJournalRecord", "TokenRow", "WriteBatch", "open_store",
]
