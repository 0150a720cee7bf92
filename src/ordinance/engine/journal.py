"""The per-execution hash chain (CONTRACT §8), written through the store's batches.

A record's body is the canonical JSON of the record without ``entry_hash``; its
``entry_hash`` is the digest of that body. The store gives it a leaf index in the
store-wide Merkle log when the batch commits.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..contract.canonical import ZERO_DIGEST, canonical_bytes
from ..store.base import JournalAppend, WriteBatch

__all__ = ["ChainWriter", "step_record"]


class ChainWriter:
    """Appends records of one execution to a pending :class:`WriteBatch`, keeping seq and prev hash."""

    __slots__ = ("execution_id", "seq", "prev", "kinds")

    def __init__(self, execution_id: str, *, next_seq: int = 0, prev_hash: str = ZERO_DIGEST) -> None:
        self.execution_id = execution_id
        self.seq = next_seq
        self.prev = prev_hash
        self.kinds: list[str] = []  # kinds appended by this writer, in order (for tests and summaries)

    def append(
        self,
        batch: WriteBatch,
        kind: str,
        at: int,
        data: dict[str, Any],
        *,
        step_id: str | None = None,
        attempt: int | None = None,
    ) -> str:
        record: dict[str, Any] = {
            "seq": self.seq,
            "execution_id": self.execution_id,
            "kind": kind,
            "at": at,
            "data": data,
            "prev_entry_hash": self.prev,
        }
        if step_id is not None:
            record["step_id"] = step_id
        if attempt is not None:
            record["attempt"] = attempt
        body = canonical_bytes(record)
        entry_hash = "sha256:" + hashlib.sha256(body).hexdigest()
        batch.journal.append(JournalAppend(self.execution_id, self.seq, kind, body, entry_hash))
        self.kinds.append(kind)
        self.seq += 1
        self.prev = entry_hash
        return entry_hash


def step_record(
    *,
    action: str,
    status: str,
    started_at: int | None,
    completed_at: int | None = None,
    pre_state_hash: str | None = None,
    post_state_hash: str | None = None,
    error_message: str | None = None,
    compensation_status: str = "not_required",
    **extra: Any,
) -> dict[str, Any]:
    """The seeds' StepRecord view carried by every step record (§8)."""
    data = {
        "operation_type": action,
        "status": status,
        "started_at": started_at,
        "completed_at": completed_at,
        "pre_state_hash": pre_state_hash,
        "post_state_hash": post_state_hash,
        "error_message": error_message,
        "compensation_status": compensation_status,
    }
    data.update(extra)
    return data
