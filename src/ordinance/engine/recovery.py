"""Recovery (CONTRACT §5.8): close every execution whose lease expired. Recovery never resumes.

The state of each step is rebuilt from the journal and the receipts; steps that were in
flight become ``cancelled`` and the failure rule set runs in full with EXECUTION_ABORTED
(``details.reason: "executor_lost"``), compensation included.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..actions.registry import StateSnapshot
from ..contract.canonical import digest
from ..contract.errors import ErrorCode
from ..contract.models import ExecutionContext, ExecutionError, OperationReceipt, Plan, PlanResult, PlanStatus
from ..store.base import ExecutionRow, ExecutionUpdate, WriteBatch
from .clock import now_ms
from .execution import Execution, RunSettings
from .journal import ChainWriter, step_record
from .outcome import run_rule_set
from .rejection import Rejection

__all__ = ["recover_expired", "close_execution"]

log = logging.getLogger("ordinance.recovery")


async def recover_expired(engine: Any) -> list[PlanResult]:
    results: list[PlanResult] = []
    while True:
        rows = engine.store.claim_expired(now_ms(), engine.owner, engine.lease_ms)
        if not rows:
            return results
        for row in rows:
            try:
                results.append(await close_execution(engine, row))
            except Exception:  # noqa: BLE001 - one bad execution must not stop recovery of the others
                log.exception("recovery of %s failed", row.execution_id)


def _previous_owner(records: list[dict[str, Any]]) -> str | None:
    """The engine that last took the execution (its ``execution.received`` record); the row's lease owner is
    already the recoverer by now."""
    for rec in reversed(records):
        if rec["kind"] == "execution.received":
            return rec["data"].get("engine")
    return None


def _lost(message: str) -> ExecutionError:
    return ExecutionError.of(ErrorCode.EXECUTION_ABORTED, message, occurred_at=now_ms(), details={"reason": "executor_lost"})


async def close_execution(engine: Any, row: ExecutionRow) -> PlanResult:
    store = engine.store
    eid = row.execution_id
    tail = store.journal_tail(eid)
    writer = ChainWriter(eid, next_seq=(tail[0] + 1) if tail else 0, prev_hash=tail[1] if tail else ChainWriter(eid).prev)
    records = [json.loads(r.body) for r in store.journal(eid)]
    kinds = [r["kind"] for r in records]

    stored = store.get_result(eid)
    if stored is not None:
        # The result was persisted before the executor died: finish the bookkeeping only.
        result = PlanResult.model_validate(stored)
        batch = WriteBatch()
        if not kinds or kinds[-1] != "execution.result":
            writer.append(batch, "execution.result", now_ms(), {"result_digest": digest(stored), "status": result.status.value,
                                                                "closed_by": "recovery"})
        batch.updates.append(ExecutionUpdate(eid, result.status.value, now_ms(), clear_lease=True))
        store.write(batch)
        return result

    found = store.get_plan(row.plan_id, row.plan_version) if row.plan_id else None
    if found is None or "admission.accepted" not in kinds:
        rej = Rejection(engine, found[1] if found else {"id": row.plan_id, "version": row.plan_version},
                        Plan.model_validate(found[1]) if found else None, row.plan_digest, row.run_id, eid,
                        row.created_at, writer, WriteBatch(), None)
        rej.halting_error = _lost("the executor was lost during admission; recovery closed the execution")
        rej.record("recovery.closed", {"reason": "executor_lost", "by": engine.owner})
        return await run_rule_set(rej, PlanStatus.FAILURE, error_handler=engine.error_handler)

    plan = Plan.model_validate(found[1])
    ctx = ExecutionContext.model_validate(row.context)
    accepted = next(r for r in records if r["kind"] == "admission.accepted")
    # the workspace in force when it was admitted (a queued execution's submitter may have been elsewhere)
    workspace = accepted["data"].get("workspace") or row.options.get("workspace") or engine.envelope.workspace
    env = engine.envelope
    settings = RunSettings(workspace=workspace, reject_symlinks=env.reject_symlinks,
                           protected_paths=tuple(env.protected_paths), nesting_depth=int(row.options.get("depth", 0)),
                           envelope=env)
    x = Execution(engine, plan, ctx, plan_digest=row.plan_digest, run_id=row.run_id, settings=settings, writer=writer,
                  batch=WriteBatch(), deadline_ms=accepted["data"].get("effective_deadline_ms", ctx.deadline_ms))
    receipts = {r["operation_id"]: r for r in store.receipts(eid)}
    order = 0
    for rec in records:
        sid = rec.get("step_id")
        if sid is None or sid not in x.by_id:
            continue
        st = x.by_id[sid]
        kind, data = rec["kind"], rec.get("data", {})
        if kind == "step.attempt_started":
            st.attempts = rec.get("attempt", st.attempts + 1)
            st.started_at = st.started_at or data.get("started_at")
            st.status = "running"
            st.in_attempt = True
        elif kind in ("step.attempt_succeeded", "step.attempt_replayed"):
            st.in_attempt = False
            st.status = "succeeded"
            st.completed_at = data.get("completed_at")
            order += 1
            st.completion_order = order
            r = receipts.get(data.get("operation_id", ""))
            if r is None:
                r = next((v for v in receipts.values() if v["step_id"] == sid and v["attempt"] == rec.get("attempt")), None)
            if r is not None:
                st.output = r.get("output")
                x.outputs[sid] = st.output
                st.resolved_payload = r.get("payload")
                snap = r.get("snapshot")
                st.snapshot = StateSnapshot(snap["digest"], snap.get("restore")) if snap else None
                st.receipt = OperationReceipt.model_validate({k: v for k, v in r.items() if k in OperationReceipt.model_fields})
        elif kind in ("step.attempt_failed", "step.attempt_timed_out"):
            st.in_attempt = False
            st.status = "running"  # between attempts (a retry may have been scheduled)
            st.completed_at = data.get("completed_at")
        elif kind in ("step.failed", "step.skipped", "step.not_run", "step.cancelled"):
            st.in_attempt = False
            st.status = kind.split(".", 1)[1]
            code = data.get("error_code")
            if code and kind != "step.not_run":
                st.error = ExecutionError.of(ErrorCode(code), data.get("error_message") or code,
                                             occurred_at=data.get("completed_at") or now_ms(), step_id=sid)
    previous = _previous_owner(records)
    x.halting_error = _lost(f"the executor ({previous}) was lost; its lease expired and recovery closed the execution")
    x.record("recovery.closed", {"reason": "executor_lost", "previous_owner": previous, "by": engine.owner})
    for st in x.states:
        if st.status == "running":
            st.status = "cancelled"
            st.completed_at = st.completed_at or now_ms()
            st.error = ExecutionError.of(ErrorCode.EXECUTION_ABORTED, "in flight when the executor was lost",
                                         occurred_at=now_ms(), step_id=st.id, details={"reason": "executor_lost"})
            x.record("step.cancelled", step_record(action=st.step.action, status="cancelled", started_at=st.started_at,
                                                   completed_at=st.completed_at, error_message="executor lost"),
                     step_id=st.id)
    return await run_rule_set(x, PlanStatus.FAILURE, error_handler=engine.error_handler)
