"""Builders shared by the store tests."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from ordinance.store import ExecutionRow, JournalAppend, OutboxEvent, WriteBatch


def row(eid: str, status: str = "queued", created_at: int = 1_000, **kw: Any) -> ExecutionRow:
    base: dict[str, Any] = {
        "execution_id": eid, "plan_id": "plan.demo", "plan_version": 1, "plan_digest": "sha256:" + "a" * 64,
        "run_id": "sha256:" + hashlib.sha256(eid.encode()).hexdigest(), "status": status,
        "created_at": created_at, "updated_at": created_at, "context": {"execution_id": eid, "inputs": {"n": 1}},
    }
    base.update(kw)
    return ExecutionRow(**base)


def rec(eid: str, seq: int, body: bytes | None = None, kind: str = "step.completed") -> JournalAppend:
    body = body if body is not None else b'{"seq":%d,"execution_id":"%s"}' % (seq, eid.encode())
    return JournalAppend(eid, seq, kind, body, "sha256:" + hashlib.sha256(body).hexdigest())


def receipt(op: str, eid: str, key: str | None = None, status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    doc = {
        "operation_id": op, "execution_id": eid, "step_id": "s1", "attempt": 1, "idempotency_key": key,
        "status": status, "action": "fs.write", "output": {"bytes": 3},
    }
    doc.update(extra)
    return doc


def step_batch(eid: str, first_seq: int = 0, n: int = 3, size: int = 400, with_receipt: bool = True,
               outbox: bool = False) -> WriteBatch:
    """A typical step's batch: ``n`` journal records of ~``size`` bytes + one receipt."""
    b = WriteBatch(journal=[rec(eid, first_seq + i, os.urandom(size)) for i in range(n)])
    if with_receipt:
        b.receipts.append(receipt(f"{eid}/op{first_seq}", eid, key=f"key-{eid}-{first_seq}"))
    if outbox:
        b.outbox.append(OutboxEvent(f"ev-{eid}-{first_seq}", eid, {"id": f"ev-{eid}-{first_seq}", "type": "t"}))
    return b


def leaf(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()
