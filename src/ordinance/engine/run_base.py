"""What every run shares, admitted or rejected: its journal chain, grouped commits and events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..contract.models import ExecutionError
from ..store.base import OutboxEvent, StoreError, WriteBatch
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
    _flush_future: asyncio.Future | None
    _store_failed: StoreError | None
    _event_seq: int

    def record(self, kind: str, data: dict[str, Any], *, step_id: str | None = None, attempt: int | None = None) -> None:
        self.writer.append(self.batch, kind, now_ms(), data, step_id=step_id, attempt=attempt)

    def commit_now(self) -> None:
        """Commit the pending batch synchronously (raises StoreError)."""
        if not self.batch:
            return
        batch, self.batch = self.batch, WriteBatch()
        self.store.write(batch)

    async def durable(self) -> None:
        """Return once everything appended so far is committed; appends made in the same loop turn share the commit."""
        if self._store_failed is not None:
            raise self._store_failed
        if self._flush_future is None:
            loop = asyncio.get_running_loop()
            self._flush_future = loop.create_future()
            loop.call_soon(self._flush)
        await asyncio.shield(self._flush_future)

    def _flush(self) -> None:
        fut, self._flush_future = self._flush_future, None
        assert fut is not None
        try:
            self.commit_now()
        except StoreError as exc:
            self._store_failed = exc
            if not fut.done():
                fut.set_exception(exc)
            fut.exception()  # mark retrieved
            return
        if not fut.done():
            fut.set_result(None)

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
