"""Workers: run queued executions from a shared store (CONTRACT §5.8, §12).

``Engine.submit`` queues an execution (status ``queued``). A :class:`Worker` claims queued executions
(``store.claim_queued``: FOR UPDATE SKIP LOCKED on PostgreSQL, the write lock on SQLite, so two workers never take
the same one), and runs up to ``concurrency`` of them at once in one asyncio loop with one :class:`Engine`. Any number
of workers, in any number of processes on any number of machines, may share one database.

Leases: a claimed execution holds a lease of ``engine.lease_ms`` that the engine renews while it runs. A worker also
runs recovery (``engine.recover_async``) at start and every ``recover_every_ms`` (default: the lease length), which
closes every execution whose lease expired — a worker that was killed, lost its machine or its network — as
``failure`` / EXECUTION_ABORTED (``details.reason: "executor_lost"``) with its in-flight steps ``cancelled``.
Recovery never resumes an execution.

Stopping: setting the ``stop_event`` given to :meth:`Worker.run` stops claiming; executions already running may
finish for up to ``grace_s`` seconds; those still running then are cancelled, which the engine closes as
``failure`` / EXECUTION_ABORTED (``details.reason: "cancelled"``). :meth:`Worker.force_stop` ends the grace period
at once. Should the process die instead, the leases lapse and another worker's recovery closes the executions.

Outbox: give a :class:`~ordinance.engine.outbox.OutboxDeliverer` and the worker delivers the store's event outbox
beside its executions (and flushes what is due before it exits). The engine must then have ``outbox=True``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from ..store.base import ExecutionRow, StoreError
from .clock import now_ms

__all__ = ["Worker", "WorkerStats"]

log = logging.getLogger("ordinance.worker")


@dataclass
class WorkerStats:
    claimed: int = 0
    finished: int = 0
    by_status: Counter = field(default_factory=Counter)
    errors: int = 0  # run_claimed raised (the lease lapses and recovery closes the execution)
    cancelled: int = 0  # still running when the grace period ended
    recovered: int = 0  # executions of lost workers this worker closed
    stop_reason: str = ""


class Worker:
    """Claims and runs queued executions with ``engine`` until stopped.

    ``concurrency``: executions run at once. ``poll_ms``: pause between claims while the queue is empty.
    Exit conditions (any that is given; the first reached wins): ``drain`` — the queue was found empty and nothing is
    running; ``max_executions`` — that many executions were claimed and have finished; ``idle_exit_s`` — nothing was
    running and nothing could be claimed for that long. Without any, the worker runs until ``stop_event`` is set.
    ``on_finished(row, result_or_None)`` is called after each execution (a hook for tests and embedding).
    """

    def __init__(
        self,
        engine: Any,
        *,
        concurrency: int = 1,
        poll_ms: int = 200,
        recover_every_ms: int | None = None,
        grace_s: float = 30.0,
        drain: bool = False,
        max_executions: int | None = None,
        idle_exit_s: float | None = None,
        deliverer: Any = None,
        on_finished: Callable[[ExecutionRow, Any], Any] | None = None,
        checkpoint_every_s: float | None = 60.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if poll_ms < 1:
            raise ValueError("poll_ms must be at least 1")
        if max_executions is not None and max_executions < 1:
            raise ValueError("max_executions must be at least 1")
        if idle_exit_s is not None and idle_exit_s < 0:
            raise ValueError("idle_exit_s must not be negative")
        if grace_s < 0:
            raise ValueError("grace_s must not be negative")
        self.engine = engine
        self.store = engine.store
        self.concurrency = concurrency
        self.poll_ms = poll_ms
        self.recover_every_ms = recover_every_ms if recover_every_ms is not None else engine.lease_ms
        self.grace_s = grace_s
        self.drain = drain
        self.max_executions = max_executions
        self.idle_exit_s = idle_exit_s
        self.deliverer = deliverer
        self.on_finished = on_finished
        #: sign a journal checkpoint this often when the log grew (§8: the engine signs checkpoints); None = never
        self.checkpoint_every_s = checkpoint_every_s
        self._last_checkpoint = time.monotonic()
        self.stats = WorkerStats()
        self._tasks: dict[asyncio.Task, ExecutionRow] = {}
        self._wake: asyncio.Event | None = None
        self._force: asyncio.Event | None = None

    @property
    def owner(self) -> str:
        return self.engine.owner

    @property
    def running(self) -> int:
        return len(self._tasks)

    def force_stop(self) -> None:
        """End the grace period now: running executions are cancelled (closed as EXECUTION_ABORTED/cancelled)."""
        if self._force is not None:
            self._force.set()

    # -- the loop ------------------------------------------------------------------------------------------------
    async def run(self, stop_event: asyncio.Event | None = None) -> WorkerStats:
        """Run until an exit condition or ``stop_event``; returns the statistics. Does not close the engine."""
        stop = stop_event or asyncio.Event()
        self._wake = asyncio.Event()
        self._force = asyncio.Event()
        loop = asyncio.get_running_loop()
        log.info("worker %s started: concurrency %d, lease %d ms, poll %d ms, store %s", self.owner, self.concurrency,
                 self.engine.lease_ms, self.poll_ms, _safe_url(self.store))
        background_stop = asyncio.Event()
        background = [loop.create_task(self._recovery_loop(background_stop), name="ordinance-worker-recovery")]
        if self.deliverer is not None:
            background.append(loop.create_task(self.deliverer.run(background_stop), name="ordinance-worker-outbox"))
        idle_since = time.monotonic()
        store_failures = 0
        try:
            while not stop.is_set():
                if self.max_executions is not None and self.stats.claimed >= self.max_executions and not self._tasks:
                    self.stats.stop_reason = f"max executions ({self.max_executions}) done"
                    break
                queue_empty = False
                while (len(self._tasks) < self.concurrency and not stop.is_set()
                       and (self.max_executions is None or self.stats.claimed < self.max_executions)):
                    try:
                        row = self.store.claim_queued(self.owner, now_ms(), self.engine.lease_ms)
                        store_failures = 0
                    except StoreError as exc:
                        store_failures += 1
                        log.warning("claim failed (%d in a row): %s", store_failures, exc)
                        break
                    if row is None:
                        queue_empty = True
                        break
                    self._start(row)
                if self._tasks:
                    idle_since = time.monotonic()
                elif queue_empty:
                    if self.drain:
                        self.stats.stop_reason = "queue drained"
                        break
                    if self.idle_exit_s is not None and time.monotonic() - idle_since >= self.idle_exit_s:
                        self.stats.stop_reason = f"idle for {self.idle_exit_s:g} s"
                        break
                # Sleep until a slot frees, the stop event, or the poll interval (longer after store failures).
                full = len(self._tasks) >= self.concurrency or (
                    self.max_executions is not None and self.stats.claimed >= self.max_executions)
                pause = None if full else self.poll_ms / 1000.0 * (min(2 ** store_failures, 50) if store_failures else 1)
                await _wait_any(stop, self._wake, pause)
                self._wake.clear()
            if stop.is_set() and not self.stats.stop_reason:
                self.stats.stop_reason = "stop requested"
            await self._finish_running()
        finally:
            # A recovery pass or a delivery pass in progress may finish (bounded), so nothing is left half-closed.
            background_stop.set()
            for t in background:
                try:
                    await asyncio.wait_for(t, 10.0)
                except BaseException:
                    pass
            if self.deliverer is not None:
                flushed = await self.deliverer.flush(5.0)
                if flushed.delivered:
                    log.info("outbox: flushed %d event(s) before exit", flushed.delivered)
            if self.checkpoint_every_s is not None and self.stats.finished:
                await self.sign_checkpoint()  # what this worker wrote is covered by a signed tree when it exits
        log.info("worker %s stopped (%s): %d claimed, %d finished %s, %d cancelled, %d recovered",
                 self.owner, self.stats.stop_reason or "error", self.stats.claimed, self.stats.finished,
                 dict(self.stats.by_status), self.stats.cancelled, self.stats.recovered)
        return self.stats

    def _start(self, row: ExecutionRow) -> None:
        self.stats.claimed += 1
        waited = max(0, now_ms() - row.created_at)
        log.info("claimed %s plan %s v%s (queued %d ms)", row.execution_id, row.plan_id or "?", row.plan_version, waited)
        task = asyncio.get_running_loop().create_task(self._execute(row), name=f"ordinance-exec-{row.execution_id}")
        self._tasks[task] = row
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.pop(task, None)
        if self._wake is not None:
            self._wake.set()

    async def _execute(self, row: ExecutionRow) -> None:
        t0 = time.monotonic()
        result = None
        try:
            result = await self.engine.run_claimed(row)
        except asyncio.CancelledError:
            self.stats.cancelled += 1
            log.warning("cancelled %s at shutdown after %d ms", row.execution_id, (time.monotonic() - t0) * 1000)
            raise
        except Exception:
            self.stats.errors += 1
            log.exception("execution %s raised; its lease will lapse and recovery will close it", row.execution_id)
        else:
            status = result.status.value
            self.stats.finished += 1
            self.stats.by_status[status] += 1
            err = f" {result.error.error_code.value}" if result.error is not None else ""
            log.info("finished %s %s%s in %d ms (%d/%d steps run)", row.execution_id, status, err,
                     (time.monotonic() - t0) * 1000, result.steps_executed, result.steps_total)
        if self.on_finished is not None:
            try:
                self.on_finished(row, result)
            except Exception:
                log.exception("on_finished hook failed")

    async def _finish_running(self) -> None:
        """Let running executions finish for up to grace_s (or until force_stop), then cancel the rest."""
        if not self._tasks:
            return
        assert self._force is not None
        log.info("stopping: waiting up to %g s for %d running execution(s)", self.grace_s, len(self._tasks))
        force_wait = asyncio.ensure_future(self._force.wait())
        loop = asyncio.get_running_loop()
        end = loop.time() + self.grace_s
        try:
            while True:
                pending = {t for t in self._tasks if not t.done()}
                if not pending or self._force.is_set():
                    break
                left = end - loop.time()
                if left <= 0:
                    break
                await asyncio.wait(pending | {force_wait}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            force_wait.cancel()
        pending = {t for t in self._tasks if not t.done()}
        if not pending:
            return
        log.warning("grace period over: cancelling %d execution(s)", len(pending))
        for t in pending:
            t.cancel()
        # The engine closes a cancelled execution (failure / EXECUTION_ABORTED / cancelled); give it a moment.
        await asyncio.wait(pending, timeout=10.0)

    async def sign_checkpoint(self) -> None:
        """Sign the journal's tree (in a thread: it hashes every leaf); problems are logged, never fatal."""
        from ..ledger.keys import SigningKeyError
        from ..ledger.service import LedgerError, sign_current_tree

        self._last_checkpoint = time.monotonic()
        try:
            _, cp = await asyncio.to_thread(sign_current_tree, self.store)
            log.info("journal checkpoint: %d records signed by %s", cp.tree_size, cp.origin)
        except (LedgerError, SigningKeyError, StoreError) as exc:
            log.warning("no journal checkpoint was signed: %s", exc)

    async def _recovery_loop(self, stop: asyncio.Event) -> None:
        interval = max(self.recover_every_ms, 50) / 1000.0
        while not stop.is_set():
            try:
                for r in await self.engine.recover_async():
                    self.stats.recovered += 1
                    code = r.error.error_code.value if r.error is not None else ""
                    reason = (r.error.details or {}).get("reason", "") if r.error is not None else ""
                    log.warning("recovered %s: %s %s %s (its executor was lost)", r.execution_id, r.status.value,
                                code, reason)
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                log.warning("recovery failed: %s", exc)
            except Exception:
                log.exception("recovery failed")
            if self.checkpoint_every_s is not None and time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s:
                await self.sign_checkpoint()
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float | None) -> None:
    if stop.is_set() or wake.is_set():
        return
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def _safe_url(store: Any) -> str:
    """The store URL without a password."""
    url = str(getattr(store, "url", store))
    if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.split("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url
