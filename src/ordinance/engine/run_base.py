"""What every run shares, admitted or rejected: its journal chain, grouped commits and events."""

from __future__ import annotations

import logging
from typing import Any

from ..contract.models import ExecutionError
from ..store.base import LeaseLostError, OutboxEvent, WriteBatch
from .clock import now_ms
from .events import make_event

__all__ = ["JournaledRun"]

log = logging.getLogger("ordinance.engine")


class JournaledRun:
    """Mixin: needs ``engine``, ``store``, ``writer``, ``batch``, ``execution_id``, ``plan_id``, ``on_event``."""

    engine: Any
    store: Any
    writer: Any
    batch: WriteBatch
    execution_id: str
    plan_id: str
    on_event: Any
    halting_error: ExecutionError | None
    _event_seq: int
    #: Set when a commit found our lease taken over: from then on nothing of ours may be written or undone.
    lease_lost: bool = False

    def record(self, kind: str, data: dict[str, Any], *, step_id: str | None = None, attempt: int | None = None) -> None:
        self.writer.append(self.batch, kind, now_ms(), data, step_id=step_id, attempt=attempt)

    def commit_now(self) -> None:
        """Commit the pending batch synchronously, fenced by this engine's lease (raises StoreError, LeaseLostError)."""
        if not self.batch:
            return
        batch, self.batch = self.batch, WriteBatch()
        batch.lease = (self.execution_id, self.engine.owner)
        try:
            self.store.write(batch)
        except LeaseLostError:
            self.lease_lost = True
            raise

    def emit(self, name: str, data: dict[str, Any], *, step_id: str | None = None) -> None:
        """Best-effort event (§5.7): bus and progress callback never block; the outbox rides the next commit."""
        engine = self.engine
        cb = self.on_event
        if not (engine.bus.active or engine.outbox or cb):
            return
        self._event_seq += 1
        payload = {"execution_id": self.execution_id, "plan_id": self.plan_id, **data}
        if step_id is not None:
            payload["step_id"] = step_id
        event = make_event(
            name, source=engine.origin, execution_id=self.execution_id, seq=self._event_seq, time_ms=now_ms(), data=payload
        )
        if cb is not None:
            try:
                cb(event)
            except Exception:  # noqa: BLE001 - a progress display must never break a run
                log.exception("progress callback failed")
        engine.bus.emit(event)
        if engine.outbox:
            self.batch.outbox.append(OutboxEvent(event["id"], self.execution_id, event))
