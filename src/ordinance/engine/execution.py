"""One admitted execution: scheduling, attempts, hard timeouts and the outcome rule sets (CONTRACT §5, §7).

Durability: a step's start records are committed before its action runs. Commits are
grouped: every record appended in one event-loop turn goes into one transaction, so in a
chain a step's completion and its successor's start cost one durable commit.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import heapq
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..actions.registry import ActionContext, ActionFailure, ActionSpec, PolicyRefusal, StateSnapshot, check_payload
from ..contract.canonical import canonical_bytes, digest, digest_bytes
from ..contract.errors import ErrorCode, ErrorSeverity
from ..contract.models import (
    CompensationStatus, CompensationType, ExecutionContext, ExecutionError, OnFailure, OperationReceipt, Plan,
    PlanResult, PlanStatus, assemble,
)
from ..store.base import LeaseLostError, StoreError, WriteBatch
from .bindings import BindingError, apply_bindings
from .clock import now_ms
from .frozen import freeze
from .journal import ChainWriter, step_record
from .run_base import JournaledRun
from .outcome import pick_error
from .state import EMPTY_STATE_DIGEST, StepState

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine

__all__ = ["Execution", "RunSettings", "AttemptTimeout"]

log = logging.getLogger("ordinance.engine")


#: The longest the scheduler runs without yielding to the event loop (attempts that finish inline, §5.1).
_MAX_TURN_S = 0.001


class AttemptTimeout(Exception):
    """An attempt reached its step's timeout_ms and was hard-stopped."""


@dataclass(frozen=True)
class RunSettings:
    """Per-execution settings resolved by the engine (never taken from the plan)."""

    workspace: str
    reject_symlinks: bool = True
    protected_paths: tuple[str, ...] = (".git/", ".ordinance/")
    nesting_depth: int = 0
    principal_user: str | None = None
    envelope: Any = None  # governance.Envelope in force
    authorization: bool = False
    principal: Any = None  # contract Principal for nested runs
    on_event: Callable[[dict[str, Any]], Any] | None = None


class Execution(JournaledRun):
    """Runs one admitted plan to its terminal PlanResult."""

    def __init__(
        self,
        engine: "Engine",
        plan: Plan,
        context: ExecutionContext,
        *,
        plan_digest: str,
        run_id: str,
        settings: RunSettings,
        writer: ChainWriter,
        batch: WriteBatch,
        deadline_ms: int,
        admitted_payloads: dict[str, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.plan = plan
        self.context = context
        self.plan_digest = plan_digest
        self.run_id = run_id
        self.settings = settings
        self.writer = writer
        self.batch = batch
        self.deadline_ms = deadline_ms
        self.execution_id = context.execution_id
        self.env_view = freeze(context.environment)  # deeply read-only (R-CTX-OPAQUE)
        self.states: list[StepState] = []
        self.by_id: dict[str, StepState] = {}
        for i, step in enumerate(plan.steps):
            st = StepState(i, step, engine.registry.get(step.action), plan.step_timeout_ms(step))
            self.states.append(st)
            self.by_id[step.id] = st
        #: Static payloads as admission parsed them (§5.0); each is used once, by its step's first attempt.
        self._admitted_payloads = admitted_payloads if admitted_payloads is not None else {}
        self.outputs: dict[str, Any] = {}
        self.halting_error: ExecutionError | None = None
        self.running: dict[str, StepState] = {}  # in flight: an attempt running, or a retry waiting
        self._completed: list[StepState] = []  # attempts that ended, for the scheduler
        self._retry_due: list[StepState] = []
        self._wake: asyncio.Future | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._deadline_hit = False
        self._completion_counter = 0
        self._event_seq = 0
        self.started_at = context.started_at
        self.plan_id = plan.id
        self.on_event = settings.on_event
        env = settings.envelope
        self._allowed_paths = _allowed_globs(env)
        self._denied_paths = tuple(env.denied_paths) if env is not None else ()

    # -- main entry ------------------------------------------------------------------------------------------------
    async def run(self) -> PlanResult:
        self.engine._active[self.execution_id] = self
        try:
            self.record("execution.started", {"deadline_ms": self.deadline_ms, "max_parallel": self.plan.max_parallel})
            self.emit("execution_started", {"deadline_ms": self.deadline_ms})
            try:
                self.commit_now()
                await self._schedule()
            except asyncio.CancelledError:
                # Cancelled from outside (a parent's step timeout, a shutdown): close the execution properly, then
                # let the cancellation go on.
                self._abort_internal("the execution was cancelled", reason="cancelled")
                await self.finish()
                raise
            except StoreError as exc:
                self._abort_internal(f"store write failed: {exc}", reason="lease_lost" if self.lease_lost else "store_error")
            except Exception as exc:  # noqa: BLE001 - an engine fault ends the execution, never a traceback
                log.exception("internal error in execution %s", self.execution_id)
                self._abort_internal(f"internal error: {type(exc).__name__}: {exc}")
            return await self.finish()
        finally:
            self.engine._active.pop(self.execution_id, None)
            if self._deadline_timer is not None:
                self._deadline_timer.cancel()

    def _abort_internal(self, message: str, *, reason: str = "internal_error") -> None:
        if self.halting_error is None or self.halting_error.error_code is not ErrorCode.EXECUTION_ABORTED:
            self.halting_error = ExecutionError.of(
                ErrorCode.EXECUTION_ABORTED, message, occurred_at=now_ms(), details={"reason": reason}
            )

    # -- scheduling (§5.1, §5.2) -------------------------------------------------------------------------------
    #
    # The scheduler owns every decision. Each round it records the starts of the attempts it launches, commits
    # them in one transaction (a start is durable before its action runs, §5.8), then launches them. Attempt
    # tasks record their own completion and notify the scheduler; timers give hard stops (§5.3) and retry
    # delays (§1.2). Completions that arrive in the same loop turn are handled, and committed, together.

    def _notify(self, st: StepState) -> None:
        self._completed.append(st)
        fut = self._wake
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _ring(self) -> None:
        fut = self._wake
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        states = self.states
        remaining = [len(st.step.depends_on) for st in states]
        dependents: list[list[int]] = [[] for _ in states]
        for st in states:
            for dep in st.step.depends_on:
                dependents[self.by_id[dep].index].append(st.index)
        ready = [st.index for st in states if remaining[st.index] == 0]
        heapq.heapify(ready)
        limit = self.plan.max_parallel
        left = (self.deadline_ms - now_ms()) / 1000.0
        self._deadline_timer = loop.call_later(max(left, 0.0), self._deadline_reached)
        completed = self._completed
        turn_started = time.monotonic()
        while True:
            if self.lease_lost:
                raise LeaseLostError(self.execution_id, self.engine.owner, None, None)
            if self._deadline_hit:
                self._plan_timeout()
                return
            # Start what is ready, in plan order, up to max_parallel (retries due keep their slot).
            launch: list[tuple] = []
            for st in self._retry_due:
                item = self._begin_attempt(st, st.attempts + 1)
                if item is not None:
                    launch.append(item)
            self._retry_due.clear()
            while ready and len(self.running) < limit:
                st = states[heapq.heappop(ready)]
                st.status = "running"
                self.running[st.id] = st
                item = self._begin_attempt(st, 1)
                if item is not None:
                    launch.append(item)
            self.commit_now()
            for item in launch:
                self._launch(*item)
            if not self.running and not completed:
                return
            if completed and time.monotonic() - turn_started > _MAX_TURN_S:
                # attempts that finish inline never give the loop a turn: give it one now and then, so timers
                # (the deadline, lease renewal), sinks and other executions keep running
                await asyncio.sleep(0)
                turn_started = time.monotonic()
            elif not completed:
                self._wake = loop.create_future()
                try:
                    await self._wake
                finally:
                    self._wake = None
                turn_started = time.monotonic()
            if self.lease_lost:
                raise LeaseLostError(self.execution_id, self.engine.owner, None, None)
            if self._deadline_hit:
                self._plan_timeout()
                return
            batch = sorted(completed, key=lambda s: s.index)
            completed.clear()
            for st in batch:
                if st.extra.pop("internal_error", None) is not None:
                    raise RuntimeError(st.extra.pop("internal_message", "attempt task failed"))
                if st.status == "succeeded":
                    del self.running[st.id]
                    for d in dependents[st.index]:
                        remaining[d] -= 1
                        if remaining[d] == 0:
                            heapq.heappush(ready, d)
                    continue
                # the attempt failed: retry (§5.2), or halt / skip
                if self._schedule_retry(st, loop):
                    continue
                del self.running[st.id]
                self._fail_step(st, st.error)
                if st.status == "skipped":
                    self._mark_not_run(st, dependents)
                elif self.halting_error is None:
                    self.halting_error = st.error
            if self.halting_error is not None:
                return

    def lose_lease(self) -> None:
        """Our lease was taken over (another engine's recovery): stop in-flight work and write nothing more."""
        self.lease_lost = True
        self._ring()

    def _deadline_reached(self) -> None:
        self._deadline_hit = True
        self._ring()

    def _schedule_retry(self, st: StepState, loop: asyncio.AbstractEventLoop) -> bool:
        """§5.2: retry if on_failure is retry, the code is in retry_on, the error is recoverable, attempts remain and
        the next attempt can start before the deadline. Schedules the attempt after the §1.2 delay."""
        policy = st.step.effective_retry_policy
        err = st.error
        if (
            policy is None or err is None or not err.recoverable or err.error_code.value not in policy.retry_on
            or st.attempts >= policy.max_attempts or st.extra.get("no_retry")
        ):
            return False
        attempt = st.attempts + 1
        delay = policy.delay_before(attempt)
        if now_ms() + delay >= self.deadline_ms:
            return False
        self.record(
            "step.retry_scheduled",
            {"next_attempt": attempt, "delay_ms": delay, "previous_error": err.error_code.value},
            step_id=st.id, attempt=attempt,
        )
        self.emit("step_retry_scheduled", {"attempt": attempt, "delay_ms": delay}, step_id=st.id)
        if delay <= 0:
            self._retry_due.append(st)
        else:
            st.extra["timer"] = loop.call_later(delay / 1000.0, self._retry_timer, st)
        return True

    def _retry_timer(self, st: StepState) -> None:
        st.extra.pop("timer", None)
        self._retry_due.append(st)
        self._ring()

    def _mark_not_run(self, origin: StepState, dependents: list[list[int]]) -> None:
        """§5.2 skip: every transitive dependent of a skipped step is not_run (in plan order)."""
        seen: set[int] = set()
        stack = list(dependents[origin.index])
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            stack.extend(dependents[i])
        for i in sorted(seen):
            st = self.states[i]
            if st.status == "pending":
                st.status = "not_run"
                self.record(
                    "step.not_run",
                    step_record(action=st.step.action, status="not_run", started_at=None,
                                reason=f"dependency {origin.id} was skipped"),
                    step_id=st.id,
                )

    def _plan_timeout(self) -> None:
        self.halting_error = ExecutionError.of(
            ErrorCode.PLAN_TIMEOUT,
            f"the plan's effective deadline passed ({self.deadline_ms - self.started_at} ms after start); "
            "in-flight steps were stopped",
            occurred_at=now_ms(),
            details={"deadline_ms": self.deadline_ms, "in_flight": [st.id for st in self._in_flight()]},
        )

    def _in_flight(self) -> list[StepState]:
        return sorted(self.running.values(), key=lambda s: s.index)

    def _fail_step(self, st: StepState, error: ExecutionError | None) -> None:
        assert error is not None
        st.completed_at = st.completed_at or now_ms()
        if st.step.on_failure is OnFailure.SKIP:
            st.status = "skipped"
            st.error = error.model_copy(update={"severity": ErrorSeverity.WARN})
            kind = "step.skipped"
            self.emit("step_skipped", {"error_code": error.error_code.value, "message": error.message}, step_id=st.id)
        else:
            st.status = "failed"
            st.error = error
            kind = "step.failed"
        self.record(
            kind,
            step_record(action=st.step.action, status=st.status, started_at=st.started_at,
                        completed_at=st.completed_at, error_message=error.message, error_code=error.error_code.value),
            step_id=st.id,
        )

    def _action_context(self, st: StepState, attempt: int, action: str, timeout_ms: int) -> ActionContext:
        s = self.settings
        return ActionContext(
            execution_id=self.execution_id,
            plan_id=self.plan.id,
            step_id=st.id,
            attempt=attempt,
            action=action,
            workspace=s.workspace,
            environment=self.env_view,
            deadline_ms=min(self.deadline_ms, now_ms() + timeout_ms),
            principal_user=s.principal_user,
            reject_symlinks=s.reject_symlinks,
            protected_paths=s.protected_paths,
            allowed_paths=self._allowed_paths,
            denied_paths=self._denied_paths,
            nesting_depth=s.nesting_depth,
            runtime=self,
        )

    # -- attempts ------------------------------------------------------------------------------------------------
    def _begin_attempt(self, st: StepState, attempt: int) -> tuple | None:
        """Prepare attempt ``attempt`` and record its start (committed by the scheduler before launch).

        Returns what :meth:`_launch` needs, or None when the attempt ended here (binding or payload error,
        idempotent replay); such an attempt is already in the completion queue.
        """
        spec = st.spec
        assert spec is not None
        step = st.step
        started = now_ms()
        st.attempts = attempt
        if st.started_at is None:
            st.started_at = started
        payload = st.resolved_payload
        if payload is None:
            try:
                payload = apply_bindings(step.payload, step.inputs, self.outputs) if step.inputs else step.payload
            except BindingError as exc:
                return self._end_early(st, ExecutionError.of(
                    ErrorCode.INVALID_PAYLOAD, f"binding failed: {exc}", occurred_at=started, step_id=st.id))
            st.resolved_payload = payload
        parsed, problems = self._admitted_payloads.pop(st.id, None), []
        if parsed is None:  # a bound payload, or a later attempt: each attempt gets a fresh parse
            parsed, problems = check_payload(spec, payload)
        if problems:
            return self._end_early(st, ExecutionError.of(
                ErrorCode.INVALID_PAYLOAD, f"payload does not fit {spec.name}: " + "; ".join(problems),
                occurred_at=started, step_id=st.id, details={"problems": problems}))
        key = st.extra.get("idempotency_key")
        if key is None:
            key = st.extra["idempotency_key"] = digest(
                {"plan_id": self.plan.id, "step_id": st.id, "action": spec.name, "payload": payload})
        if spec.idempotent:  # §7.2: a key with a succeeded receipt is replayed, not run again
            prior = self.store.find_receipt(key)
            if prior is not None:
                self._replay(st, attempt, key, prior, started)
                self._notify(st)
                return None
        ctx = self._action_context(st, attempt, spec.name, st.timeout_ms)
        pre = self._probe(spec, payload, ctx)
        st.extra["pre"] = pre
        st.in_attempt = True
        st.extra["open_attempt"] = attempt
        self.record(
            "step.attempt_started",
            step_record(action=spec.name, status="running", started_at=started, pre_state_hash=pre.digest,
                        idempotency_key=key, timeout_ms=st.timeout_ms),
            step_id=st.id, attempt=attempt,
        )
        self.emit("step_started", {"attempt": attempt, "action": spec.name}, step_id=st.id)
        return (st, attempt, parsed, ctx, pre, key)

    def _end_early(self, st: StepState, error: ExecutionError) -> None:
        """An attempt that never reached its action: not retried (INVALID_PAYLOAD is not recoverable)."""
        st.error = error
        st.extra["no_retry"] = True
        self._notify(st)
        return None

    def _launch(self, st: StepState, attempt: int, parsed: Any, ctx: ActionContext, pre: StateSnapshot, key: str) -> None:
        loop = asyncio.get_running_loop()
        spec = st.spec
        assert spec is not None
        resume: _Resumed | None = None
        context = None
        t0 = time.monotonic()
        limit_at = t0 + st.timeout_ms / 1000.0  # §5.3: a result that arrives at or past this is discarded
        if spec.inline and spec.is_async:
            # An inline action (ActionSpec.inline: it finishes without suspending) runs right here: no task, no
            # timer, no extra event-loop turn. Should it suspend after all, it goes on in a task from there.
            context = contextvars.copy_context()
            coro = spec.func(parsed, ctx)
            try:
                first = context.run(coro.send, None)
            except StopIteration as stop:
                self._attempt_returned(st, attempt, pre, key, stop.value, limit_at)
                return
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - the action raised before it ever suspended
                self._attempt_raised(st, attempt, pre, key, exc)
                return
            resume = _Resumed(coro, first)
        task = loop.create_task(self._attempt_body(st, attempt, parsed, ctx, pre, key, limit_at, resume),
                                context=context)
        task.add_done_callback(self._task_done)
        st.extra["task"] = task
        # an inline action's first stretch has already used part of the limit
        st.extra["timer"] = loop.call_at(loop.time() + max(0.0, limit_at - time.monotonic()), self._attempt_timed_out,
                                         st, attempt)

    async def _attempt_body(self, st: StepState, attempt: int, parsed: Any, ctx: ActionContext, pre: StateSnapshot,
                            key: str, limit_at: float, resume: _Resumed | None = None) -> None:
        spec = st.spec
        assert spec is not None
        try:
            if resume is not None:
                output = await resume
            elif spec.is_async:
                output = await spec.func(parsed, ctx)
            else:
                pool = await self.engine._get_pool()
                # the engine's timer stops the attempt; the pool's own limit is only a backstop
                output = await pool.run(spec.func, parsed, ctx.for_worker(), st.timeout_ms / 1000.0 + 5.0)
        except asyncio.CancelledError:
            if st.extra.get("open_attempt") == attempt:  # stopped with the plan (not by our own timer)
                self._close_attempt(st, attempt, pre, key, "cancelled", None, None, None)
            raise
        except Exception as exc:  # noqa: BLE001 - an action's exception is a step failure
            self._attempt_raised(st, attempt, pre, key, exc)
            return
        self._attempt_returned(st, attempt, pre, key, output, limit_at)

    def _attempt_returned(self, st: StepState, attempt: int, pre: StateSnapshot, key: str, output: Any,
                          limit_at: float) -> None:
        """An attempt whose action returned: too late (§5.3), not JSON (STEP_FAILED), or succeeded."""
        if time.monotonic() >= limit_at:  # the timer never got to run (an inline action, a blocked loop): too late
            self._finish(st, attempt, pre, key, error=self._timeout_error(st, attempt), timed_out=True)
            return
        try:
            output_digest = digest_bytes(canonical_bytes(output))  # must be JSON (no NaN, no objects)
        except Exception as exc:  # noqa: BLE001 - not JSON: the step fails
            self._attempt_raised(st, attempt, pre, key, exc)
            return
        self._finish(st, attempt, pre, key, output=output, output_digest=output_digest)

    def _attempt_raised(self, st: StepState, attempt: int, pre: StateSnapshot, key: str, exc: BaseException) -> None:
        """An attempt whose action raised: POLICY_DENIED, STEP_FAILED or (the pool's backstop) STEP_TIMEOUT."""
        spec = st.spec
        assert spec is not None
        if isinstance(exc, PolicyRefusal):
            # the envelope said no at use (§6.2): POLICY_DENIED, and the decision is journaled like any other (§6.3)
            env = self.settings.envelope
            self.record("policy.decision", {
                "check": exc.check, "subject": {"action": spec.name, "path": exc.path}, "verdict": "deny",
                "reason": exc.message, "policy_digest": env.digest() if env is not None else None, "at_use": True,
            }, step_id=st.id, attempt=attempt)
            error = ExecutionError.of(
                ErrorCode.POLICY_DENIED, exc.message, occurred_at=now_ms(), step_id=st.id,
                details={"attempt": attempt, **exc.details})
        elif isinstance(exc, ActionFailure):
            error = ExecutionError.of(
                ErrorCode.STEP_FAILED, exc.message or "action failed", occurred_at=now_ms(), step_id=st.id,
                recoverable=exc.recoverable, details={"attempt": attempt, **exc.details})
        elif isinstance(exc, asyncio.TimeoutError):  # the pool's backstop
            self._finish(st, attempt, pre, key, error=self._timeout_error(st, attempt), timed_out=True)
            return
        else:
            error = ExecutionError.of(
                ErrorCode.STEP_FAILED, f"{type(exc).__name__}: {exc}", occurred_at=now_ms(), step_id=st.id,
                details={"attempt": attempt, "exception": type(exc).__name__})
        self._finish(st, attempt, pre, key, error=error)

    def _timeout_error(self, st: StepState, attempt: int) -> ExecutionError:
        return ExecutionError.of(
            ErrorCode.STEP_TIMEOUT, f"attempt {attempt} ran past its timeout of {st.timeout_ms} ms and was stopped",
            occurred_at=now_ms(), step_id=st.id, details={"timeout_ms": st.timeout_ms, "attempt": attempt},
        )

    def _attempt_timed_out(self, st: StepState, attempt: int) -> None:
        """§5.3 hard stop: close the attempt first (so no late result can land), then stop the work."""
        if st.extra.get("open_attempt") != attempt:
            return
        spec = st.spec
        assert spec is not None
        ctx = self._action_context(st, attempt, spec.name, st.timeout_ms)
        pre = self._probe_cache(st)
        self._finish(st, attempt, pre, st.extra["idempotency_key"], error=self._timeout_error(st, attempt), timed_out=True,
                     ctx=ctx)
        task = st.extra.get("task")
        if task is not None and not task.done():
            task.cancel()

    def _probe_cache(self, st: StepState) -> StateSnapshot:
        return st.extra.get("pre") or StateSnapshot(EMPTY_STATE_DIGEST)

    def _task_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # an engine fault inside the attempt machinery
            for st in self.running.values():
                if st.extra.get("task") is task:
                    st.extra["internal_error"] = exc
                    st.extra["internal_message"] = f"{type(exc).__name__}: {exc}"
                    self._notify(st)
                    return

    def _finish(self, st: StepState, attempt: int, pre: StateSnapshot, key: str, *, output: Any = None,
                output_digest: str | None = None, error: ExecutionError | None = None, timed_out: bool = False,
                ctx: ActionContext | None = None) -> None:
        """Record the end of an attempt (once: whoever comes first, the action or the timer) and notify."""
        if st.extra.get("open_attempt") != attempt:
            return  # already closed by the timer: the late result is discarded
        spec = st.spec
        assert spec is not None
        status = "succeeded" if error is None else ("timed_out" if timed_out else "failed")
        self._close_attempt(st, attempt, pre, key, status, output, output_digest, error, ctx)
        self._notify(st)

    def _close_attempt(self, st: StepState, attempt: int, pre: StateSnapshot, key: str, status: str, output: Any,
                       output_digest: str | None, error: ExecutionError | None, ctx: ActionContext | None = None) -> None:
        spec = st.spec
        assert spec is not None
        st.extra["open_attempt"] = None
        st.in_attempt = False
        timer = st.extra.pop("timer", None)
        if timer is not None:
            timer.cancel()
        finished = now_ms()
        payload = st.resolved_payload or {}
        if status == "cancelled":
            post_digest = None
        elif spec.probe is None:
            post_digest = EMPTY_STATE_DIGEST
        else:
            post_digest = self._probe(spec, payload, ctx or self._action_context(st, attempt, spec.name, st.timeout_ms)).digest
        ctype, ccmd = self._compensation_of(st)
        receipt = _receipt(
            operation_id=_operation_id(self.execution_id, st.id, attempt), execution_id=self.execution_id,
            step_id=st.id, attempt=attempt, timestamp=finished, action=spec.name, idempotency_key=key,
            pre_state_hash=pre.digest, post_state_hash=post_digest, compensation_type=ctype,
            compensation_command=ccmd, status=status,
        )
        stored = _receipt_doc(receipt)
        stored["output"] = output if status == "succeeded" else None
        stored["payload"] = payload
        stored["snapshot"] = _stored_snapshot(pre)
        self.batch.receipts.append(stored)
        st.receipt = receipt
        st.completed_at = finished
        if status == "cancelled":
            return
        if error is None:
            st.status = "succeeded"
            st.output = output
            st.error = None
            st.snapshot = pre
            self.outputs[st.id] = output
            self._completion_counter += 1
            st.completion_order = self._completion_counter
            self.record(
                "step.attempt_succeeded",
                step_record(action=spec.name, status="succeeded", started_at=st.extra.get("attempt_started", st.started_at),
                            completed_at=finished, pre_state_hash=pre.digest, post_state_hash=post_digest,
                            output_digest=output_digest, operation_id=receipt.operation_id),
                step_id=st.id, attempt=attempt,
            )
            self.emit("step_succeeded", {"attempt": attempt, "duration_ms": finished - (st.started_at or finished)},
                      step_id=st.id)
            return
        st.error = error
        self.record(
            "step.attempt_timed_out" if status == "timed_out" else "step.attempt_failed",
            step_record(action=spec.name, status=status, started_at=st.started_at, completed_at=finished,
                        pre_state_hash=pre.digest, post_state_hash=post_digest, error_message=error.message,
                        error_code=error.error_code.value, recoverable=error.recoverable,
                        operation_id=receipt.operation_id),
            step_id=st.id, attempt=attempt,
        )
        self.emit(
            "step_timed_out" if status == "timed_out" else "step_failed",
            {"attempt": attempt, "error_code": error.error_code.value, "message": error.message}, step_id=st.id,
        )

    def _replay(self, st: StepState, attempt: int, key: str, prior: dict[str, Any], started: int) -> None:
        ctype, ccmd = self._compensation_of(st)
        receipt = _receipt(
            operation_id=_operation_id(self.execution_id, st.id, attempt), execution_id=self.execution_id,
            step_id=st.id, attempt=attempt, timestamp=started, action=st.step.action, idempotency_key=key,
            pre_state_hash=prior.get("post_state_hash"), post_state_hash=prior.get("post_state_hash"),
            compensation_type=ctype, compensation_command=ccmd, status="replayed",
        )
        stored = _receipt_doc(receipt)
        stored["output"] = prior.get("output")
        stored["replayed_from"] = prior.get("operation_id")
        self.batch.receipts.append(stored)
        st.receipt = receipt
        st.status = "succeeded"
        st.output = prior.get("output")
        st.completed_at = started
        st.snapshot = None  # a replay changed nothing; there is nothing of ours to compensate
        self.outputs[st.id] = st.output
        self._completion_counter += 1
        st.completion_order = self._completion_counter
        self.record(
            "step.attempt_replayed",
            step_record(action=st.step.action, status="replayed", started_at=started, completed_at=started,
                        idempotency_key=key, replayed_from=prior.get("operation_id")),
            step_id=st.id, attempt=attempt,
        )
        self.emit("step_succeeded", {"attempt": attempt, "replayed": True}, step_id=st.id)

    def _probe(self, spec: ActionSpec, payload: dict[str, Any], ctx: ActionContext) -> StateSnapshot:
        if spec.probe is None:
            return StateSnapshot(EMPTY_STATE_DIGEST)
        try:
            return spec.probe(payload, ctx)
        except Exception as exc:  # noqa: BLE001 - a state we cannot read is recorded as such
            return StateSnapshot(digest({"unreadable_state": f"{type(exc).__name__}: {exc}"}))

    def _compensation_of(self, st: StepState) -> tuple[CompensationType, str | None]:
        if st.step.compensation is not None:
            c = st.step.compensation
            return CompensationType.CUSTOM, canonical_bytes(c.model_dump(mode="json", exclude_unset=True)).decode()
        if st.spec is not None and st.spec.compensate is not None:
            return st.spec.compensation_type, None
        return CompensationType.NONE, None

    async def _call(self, spec: ActionSpec, parsed: Any, ctx: ActionContext, timeout_ms: int) -> Any:
        """Run one action outside the scheduler (compensations) with a hard stop at ``timeout_ms`` (§5.3)."""
        timeout_s = timeout_ms / 1000.0
        if not spec.is_async:
            pool = await self.engine._get_pool()
            try:
                return await pool.run(spec.func, parsed, ctx.for_worker(), timeout_s)
            except asyncio.TimeoutError:
                raise AttemptTimeout() from None
        loop = asyncio.get_running_loop()
        task = loop.create_task(spec.func(parsed, ctx))
        waiter = loop.create_future()

        def wake(_: Any = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        task.add_done_callback(wake)
        timer = loop.call_later(timeout_s, wake)
        try:
            await waiter
        except asyncio.CancelledError:
            timer.cancel()
            await _stop_task(task)
            raise
        timer.cancel()
        if not task.done():  # the timer fired first: hard stop, and no late result is accepted
            await _stop_task(task)
            raise AttemptTimeout()
        return task.result()

    # -- outcome (§5.5, §5.6) ----------------------------------------------------------------------------------
    async def finish(self) -> PlanResult:
        status = self._classify()
        return await self.engine._run_rule_set(self, status)

    def _classify(self) -> PlanStatus:
        if self.halting_error is not None:
            return PlanStatus.FAILURE
        statuses = [st.status for st in self.states]
        if all(s == "succeeded" for s in statuses):
            return PlanStatus.SUCCESS
        if not any(s == "succeeded" for s in statuses):
            return PlanStatus.FAILURE
        return PlanStatus.PARTIAL

    # Rule-set actions the engine calls back into --------------------------------------------------------------
    def stop_scheduling(self) -> dict[str, Any]:
        not_started = []
        for st in self.states:
            if st.status == "pending":
                st.status = "not_run"
                not_started.append(st.id)
        return {"not_started": not_started}

    async def stop_in_flight(self) -> dict[str, Any]:
        """Hard-stop every in-flight step (§5.3): running attempts are cancelled, waiting retries dropped."""
        in_flight = self._in_flight()
        tasks = []
        for st in in_flight:
            timer = st.extra.pop("timer", None)
            if timer is not None:
                timer.cancel()
            task = st.extra.get("task")
            if task is not None and not task.done():
                task.cancel()
                tasks.append(task)
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        for st in in_flight:
            if st.extra.get("open_attempt") is not None:  # the task did not acknowledge: close it here
                self._close_attempt(st, st.attempts, self._probe_cache(st), st.extra["idempotency_key"], "cancelled",
                                    None, None, None)
            st.status = "cancelled"
            st.completed_at = st.completed_at or now_ms()
            if self.halting_error is not None:
                st.error = ExecutionError.of(
                    self.halting_error.error_code, f"stopped in flight: {self.halting_error.message}",
                    occurred_at=now_ms(), step_id=st.id, details={"reason": "plan_stopped"},
                )
            self.record(
                "step.cancelled",
                step_record(action=st.step.action, status="cancelled", started_at=st.started_at, completed_at=st.completed_at,
                            error_message=self.halting_error.message if self.halting_error else None),
                step_id=st.id, attempt=st.attempts or None,
            )
        self.running.clear()
        return {"cancelled": [st.id for st in in_flight]}

    async def compensate(self) -> dict[str, Any]:
        """§7.4: undo every succeeded step that has a compensation, in reverse completion order."""
        if self.lease_lost:
            # Another executor's recovery owns this execution now and compensates it; doing it twice would be wrong.
            return {"verified": [], "failed": [], "skipped": [], "not_ours": "lease lost"}
        done = sorted((st for st in self.states if st.status == "succeeded"), key=lambda s: -(s.completion_order or 0))
        summary: dict[str, Any] = {"verified": [], "failed": [], "skipped": []}
        for st in done:
            has_comp = st.step.compensation is not None or (st.spec is not None and st.spec.compensate is not None)
            if not has_comp:
                continue
            if st.receipt is not None and st.receipt.status == "replayed":
                continue
            if not self.plan.compensate_on_failure:
                st.compensation_status = CompensationStatus.SKIPPED
                summary["skipped"].append(st.id)
                continue
            verified, message = await self._compensate_one(st)
            if verified:
                st.status = "compensated"
                st.compensation_status = CompensationStatus.VERIFIED
                summary["verified"].append(st.id)
            else:
                st.compensation_status = CompensationStatus.FAILED
                summary["failed"].append({"step_id": st.id, "reason": message})
            if st.receipt is not None:
                st.receipt = st.receipt.model_copy(update={"compensation_verified": verified})
            self.record(
                "step.compensated" if verified else "step.compensation_failed",
                step_record(action=st.step.action, status=st.status, started_at=st.started_at,
                            completed_at=st.completed_at, compensation_status=st.compensation_status.value,
                            error_message=None if verified else message,
                            pre_state_hash=st.receipt.pre_state_hash if st.receipt else None),
                step_id=st.id,
            )
            self.emit("step_compensated", {"verified": verified, "message": message}, step_id=st.id)
        return summary

    async def _compensate_one(self, st: StepState) -> tuple[bool, str]:
        spec = st.spec
        assert spec is not None
        payload = st.resolved_payload if st.resolved_payload is not None else st.step.payload
        comp = st.step.compensation
        try:
            if comp is not None:
                cspec = self.engine.registry.get(comp.action)
                if cspec is None:
                    return False, f"compensation action {comp.action} is not registered"
                timeout = comp.timeout_ms or self.plan.step_timeout_ms(st.step)
                ctx = self._action_context(st, 1, comp.action, timeout)
                await self._call(cspec, cspec.parse_payload(comp.payload), ctx, timeout)
            else:
                assert spec.compensate is not None
                if st.snapshot is None:
                    return False, "no pre-state snapshot to restore"
                ctx = self._action_context(st, st.attempts, spec.name, st.timeout_ms)
                res = spec.compensate(payload, st.snapshot, ctx)
                if asyncio.iscoroutine(res):
                    await res
        except AttemptTimeout:
            return False, "compensation timed out"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            return False, f"compensation raised {type(exc).__name__}: {exc}"
        ctx = self._action_context(st, st.attempts, spec.name, st.timeout_ms)
        after = self._probe(spec, payload, ctx)
        expected = st.receipt.pre_state_hash if st.receipt else None
        if after.digest != expected:
            return False, f"state after compensation {after.digest} differs from the pre-state {expected}"
        return True, "state restored to the receipt's pre_state_hash"

    def step_errors(self) -> list[ExecutionError]:
        return [st.error for st in self.states if st.error is not None]

    def pick_error(self, status: PlanStatus) -> ExecutionError | None:
        if status is PlanStatus.SUCCESS:
            return None
        if status is PlanStatus.FAILURE and self.halting_error is not None:
            return self.halting_error
        return pick_error(self.step_errors(), now=now_ms())

    def build_result(self, status: PlanStatus, error: ExecutionError | None, completed_at: int) -> PlanResult:
        results = tuple(st.to_result() for st in self.states)
        return PlanResult(
            plan_id=self.plan.id,
            plan_version=self.plan.version,
            execution_id=self.execution_id,
            status=status,
            started_at=self.started_at,
            completed_at=completed_at,
            duration_ms=max(0, completed_at - self.started_at),
            steps_total=len(self.states),
            steps_executed=sum(1 for st in self.states if st.attempts > 0),
            step_results=results,
            plan_digest=self.plan_digest,
            run_id=self.run_id,
            error=error,
        )


def _allowed_globs(env: Any) -> tuple[str, ...] | None:
    """The envelope's allow-list as one tuple for the actions (None when everything is allowed)."""
    if env is None:
        return None
    lists = env._path_lists()
    if len(lists) == 1:
        return None if tuple(lists[0]) == ("*",) else tuple(lists[0])
    # a narrowed envelope: a path must pass every list; actions get the narrowest list (the context's) and the
    # admission-time check covers the rest for static paths
    return tuple(lists[-1])


#: Restore data kept in a stored receipt (for compensation by recovery after a crash); larger pre-states are
#: compensated from memory only, and a recovered execution reports them as not restorable.
MAX_STORED_RESTORE = 1024 * 1024


def _stored_snapshot(pre: StateSnapshot) -> dict[str, Any]:
    restore = pre.restore
    if restore is not None:
        try:
            if len(canonical_bytes(restore)) > MAX_STORED_RESTORE:
                restore = None
        except (TypeError, ValueError):
            restore = None
    return {"digest": pre.digest, "restore": restore}


def _operation_id(execution_id: str, step_id: str, attempt: int) -> str:
    return "op_" + hashlib.sha256(f"{execution_id}/{step_id}/{attempt}".encode()).hexdigest()[:32]


def _receipt(**fields: Any) -> OperationReceipt:
    """An OperationReceipt from engine-built fields (already of the right types: no re-validation)."""
    fields.setdefault("compensation_verified", False)
    return assemble(OperationReceipt, fields)


def _receipt_doc(r: OperationReceipt) -> dict[str, Any]:
    return {
        "operation_id": r.operation_id, "execution_id": r.execution_id, "step_id": r.step_id, "attempt": r.attempt,
        "timestamp": r.timestamp, "action": r.action, "idempotency_key": r.idempotency_key,
        "pre_state_hash": r.pre_state_hash, "post_state_hash": r.post_state_hash,
        "compensation_type": r.compensation_type.value, "compensation_command": r.compensation_command,
        "compensation_verified": r.compensation_verified, "status": r.status,
    }


class _Resumed:
    """Awaitable that carries on a coroutine already started by hand, from the value it first yielded.

    What a task would have done from the start: every value the coroutine yields goes to the task driving us,
    every value or exception sent back goes into the coroutine (cancellation included).
    """

    __slots__ = ("coro", "first")

    def __init__(self, coro: Any, first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Any:
        coro, value = self.coro, self.first
        self.first = None
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in by the task (CancelledError): pass it on
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _stop_task(task: asyncio.Task) -> None:
    """Cancel an action's task and give it a moment to clean up (kill its process group); never wait long."""
    task.cancel()
    try:
        await asyncio.wait({task}, timeout=2.0)
    except asyncio.CancelledError:
        pass
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: a late result is discarded
    elif not task.done():
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
