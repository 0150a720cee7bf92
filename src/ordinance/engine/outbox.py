"""Delivery of the durable event outbox (CONTRACT §5.7): at-least-once, with exponential backoff.

An engine built with ``outbox=True`` writes every CloudEvent into the store's outbox in the same transaction as
the journal records it describes, so an event exists exactly when what it announces is durable. An
:class:`OutboxDeliverer` takes due events from the store (``outbox_claim``), sends each one to every sink
(a :class:`~ordinance.engine.events.WebhookSink`, signed with HMAC-SHA256, a
:class:`~ordinance.engine.events.JsonlSink`, or anything with ``async send(event)``), and then:

* every sink accepted it → ``outbox_done``: it is never sent again;
* a sink failed → ``outbox_retry`` after ``backoff_ms(attempts)``: 1 s, 2 s, 4 s, … capped at 5 minutes;
* it has failed ``max_attempts`` times → it is *dead*: kept in the outbox with its ``last_error`` and a
  ``next_at`` of :data:`DEAD_AT` (far in the future), so no deliverer takes it again by itself.

At-least-once means duplicates are possible (a crash between the send and ``outbox_done``, a send slower than the
claim window of another worker, a retry after a partial multi-sink failure); loss is not. Receivers deduplicate by
the CloudEvent ``id``, which is derived from (execution, event sequence, name) and is therefore stable across
re-sends. There is no ordering guarantee across retries; within one pass the events of one execution are sent in
outbox order.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..store.base import OutboxEvent, Store, StoreError
from .clock import now_ms

__all__ = [
    "OutboxDeliverer", "DeliveryStats", "backoff_ms", "DEAD_AT", "DEFAULT_BASE_DELAY_MS", "DEFAULT_MAX_DELAY_MS",
    "DEFAULT_MAX_ATTEMPTS",
]

log = logging.getLogger("ordinance.outbox")

#: ``next_at`` of a dead event: 2^62 ms is ~146 million years away, and fits a PostgreSQL BIGINT.
DEAD_AT = 1 << 62
DEFAULT_BASE_DELAY_MS = 1_000
DEFAULT_MAX_DELAY_MS = 300_000
#: 1+2+4+…+256 s, then 5-minute steps: 20 failed tries span about an hour before an event is dead.
DEFAULT_MAX_ATTEMPTS = 20


def backoff_ms(failed_attempts: int, *, base_ms: int = DEFAULT_BASE_DELAY_MS, max_ms: int = DEFAULT_MAX_DELAY_MS) -> int:
    """Delay before the next try after ``failed_attempts`` failures (≥ 1): base · 2^(n−1), capped at ``max_ms``."""
    n = max(1, failed_attempts)
    if n > 62:
        return max_ms
    return min(max_ms, base_ms * (1 << (n - 1)))


@dataclass
class DeliveryStats:
    """What one pass (or a whole loop) did."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)  # the last few error messages, newest last

    def add(self, other: DeliveryStats) -> None:
        self.claimed += other.claimed
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        self.errors = (self.errors + other.errors)[-20:]


class OutboxDeliverer:
    """Delivers the store's outbox to ``sinks`` at-least-once.

    ``deliver_once()`` makes one pass over the events that are due now; ``run(stop_event)`` repeats it until the
    event is set (sleeping ``poll_ms`` when nothing was due). Many deliverers (in many worker processes on many
    machines) may share one store: ``outbox_claim`` hides a claimed event from the others for a while
    (``OUTBOX_CLAIM_MS``), so they rarely send the same event twice.
    """

    def __init__(
        self,
        store: Store,
        sinks: Iterable[Any],
        *,
        batch_size: int = 100,
        poll_ms: int = 500,
        base_delay_ms: int = DEFAULT_BASE_DELAY_MS,
        max_delay_ms: int = DEFAULT_MAX_DELAY_MS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        send_timeout_s: float = 10.0,
        parallel: int = 8,
        jitter: float = 0.1,
    ) -> None:
        self.store = store
        self.sinks = list(sinks)
        if not self.sinks:
            raise ValueError("an OutboxDeliverer needs at least one sink")
        if batch_size < 1 or poll_ms < 1 or base_delay_ms < 1 or max_delay_ms < base_delay_ms or max_attempts < 1:
            raise ValueError("batch_size, poll_ms, base_delay_ms and max_attempts must be ≥ 1, max_delay_ms ≥ base_delay_ms")
        self.batch_size = batch_size
        self.poll_ms = poll_ms
        self.base_delay_ms = base_delay_ms
        self.max_delay_ms = max_delay_ms
        self.max_attempts = max_attempts
        self.send_timeout_s = send_timeout_s
        self.parallel = max(1, parallel)
        self.jitter = max(0.0, jitter)
        self.totals = DeliveryStats()

    # -- one pass ------------------------------------------------------------------------------------------------
    async def deliver_once(self) -> DeliveryStats:
        """Claim the events due now (up to ``batch_size``), send them, record each outcome. Never raises for a
        sink failure; a store failure is raised as StoreError (the loop logs it and carries on)."""
        stats = DeliveryStats()
        claimed = self.store.outbox_claim(now_ms(), self.batch_size)
        if not claimed:
            return stats
        stats.claimed = len(claimed)
        # One lane per execution keeps an execution's events in outbox order within this pass; executions run side
        # by side, at most ``parallel`` at once.
        lanes: dict[str, list[tuple[int, OutboxEvent, int]]] = {}
        for item in claimed:
            lanes.setdefault(item[1].execution_id, []).append(item)
        gate = asyncio.Semaphore(self.parallel)

        async def lane(items: list[tuple[int, OutboxEvent, int]]) -> None:
            async with gate:
                for outbox_id, event, attempts in items:
                    await self._deliver(outbox_id, event, attempts, stats)

        await asyncio.gather(*(lane(items) for items in lanes.values()))
        self.totals.add(stats)
        return stats

    async def _deliver(self, outbox_id: int, event: OutboxEvent, attempts: int, stats: DeliveryStats) -> None:
        error: str | None = None
        for sink in self.sinks:
            try:
                await asyncio.wait_for(sink.send(event.event), self.send_timeout_s)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                error = f"{getattr(sink, 'name', sink)}: no answer within {self.send_timeout_s:g} s"
            except Exception as exc:
                error = f"{getattr(sink, 'name', sink)}: {type(exc).__name__}: {exc}"
        now = now_ms()
        if error is None:
            self.store.outbox_done(outbox_id, now)
            stats.delivered += 1
            return
        failed = attempts + 1
        stats.errors = (stats.errors + [error])[-20:]
        if failed >= self.max_attempts:
            self.store.outbox_retry(outbox_id, DEAD_AT, f"dead after {failed} attempts; last error: {error}"[:2000])
            stats.dead += 1
            log.warning("outbox event %s (%s, execution %s) is dead after %d attempts: %s", event.event_id,
                        event.event.get("type"), event.execution_id, failed, error)
            return
        delay = backoff_ms(failed, base_ms=self.base_delay_ms, max_ms=self.max_delay_ms)
        if self.jitter:
            delay += int(delay * self.jitter * random.random())
        self.store.outbox_retry(outbox_id, now + delay, error[:2000])
        stats.retried += 1
        log.info("outbox event %s (%s) failed (attempt %d), next try in %d ms: %s", event.event_id,
                 event.event.get("type"), failed, delay, error)

    # -- the loop ------------------------------------------------------------------------------------------------
    async def run(self, stop_event: asyncio.Event | None = None) -> DeliveryStats:
        """Deliver until ``stop_event`` is set. A full batch is followed at once by the next pass."""
        stop = stop_event or asyncio.Event()
        failures = 0
        while not stop.is_set():
            try:
                stats = await self.deliver_once()
                failures = 0
            except StoreError as exc:
                failures += 1
                log.warning("outbox delivery: store error: %s", exc)
                stats = DeliveryStats()
            if stats.claimed >= self.batch_size and not failures:
                await asyncio.sleep(0)
                continue
            pause = self.poll_ms / 1000.0 * (min(2 ** failures, 20) if failures else 1)
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except TimeoutError:
                pass
        return self.totals

    async def flush(self, timeout_s: float = 5.0) -> DeliveryStats:
        """Passes over what is due now until nothing is left due or ``timeout_s`` runs out (used at shutdown)."""
        total = DeliveryStats()
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while loop.time() < end:
            try:
                stats = await asyncio.wait_for(self.deliver_once(), max(0.01, end - loop.time()))
            except (TimeoutError, StoreError) as exc:
                log.warning("outbox flush stopped: %s", exc or "timeout")
                break
            total.add(stats)
            if stats.claimed == 0 or stats.delivered == 0:
                break
        return total

    async def aclose(self) -> None:
        for sink in self.sinks:
            closer = getattr(sink, "aclose", None)
            if closer is not None:
                try:
                    await asyncio.wait_for(closer(), 1.0)
                except BaseException:
                    pass
