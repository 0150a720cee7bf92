"""An execution that admission refused (§5.0): still journaled, persisted and announced."""

from __future__ import annotations

from typing import Any

from ..contract.models import ExecutionError, PlanResult, PlanStatus, StepResult, StepStatus
from ..store.base import WriteBatch
from .journal import ChainWriter
from .run_base import JournaledRun

__all__ = ["Rejection"]


class Rejection(JournaledRun):
    """Runs the failure rule set with no step started (``steps_executed = 0``)."""

    def __init__(self, engine: Any, plan_doc: Any, plan_model: Any, plan_digest: str, run_id: str, execution_id: str,
                 started_at: int, writer: ChainWriter, batch: WriteBatch, on_event: Any) -> None:
        self.engine = engine
        self.store = engine.store
        self.plan_doc = plan_doc
        self.plan_model = plan_model
        self.plan_digest = plan_digest
        self.run_id = run_id
        self.execution_id = execution_id
        self.started_at = started_at
        self.writer = writer
        self.batch = batch
        self.on_event = on_event
        self.halting_error: ExecutionError | None = None
        self._event_seq = 0
        doc = plan_doc if isinstance(plan_doc, dict) else {}
        self.plan_id = doc["id"] if isinstance(doc.get("id"), str) else ""
        v = doc.get("version")
        self.plan_version = v if isinstance(v, int) and not isinstance(v, bool) else 0
        self.step_ids = _step_ids(plan_model, doc)

    def stop_scheduling(self) -> dict[str, Any]:
        return {"not_started": list(self.step_ids)}

    async def stop_in_flight(self) -> dict[str, Any]:
        return {"cancelled": []}

    async def compensate(self) -> dict[str, Any]:
        return {"verified": [], "failed": [], "skipped": []}

    def step_errors(self) -> list[ExecutionError]:
        return []

    def pick_error(self, status: PlanStatus) -> ExecutionError | None:
        return self.halting_error

    def build_result(self, status: PlanStatus, error: ExecutionError | None, completed_at: int) -> PlanResult:
        results = tuple(
            StepResult(step_id=sid, status=StepStatus.NOT_RUN, attempts=0, started_at=None, completed_at=None,
                       duration_ms=None)
            for sid in self.step_ids
        )
        return PlanResult(
            plan_id=self.plan_id, plan_version=self.plan_version, execution_id=self.execution_id, status=status,
            started_at=self.started_at, completed_at=max(completed_at, self.started_at),
            duration_ms=max(0, completed_at - self.started_at), steps_total=len(results), steps_executed=0,
            step_results=results, plan_digest=self.plan_digest, run_id=self.run_id, error=error,
        )


def _step_ids(plan_model: Any, doc: dict[str, Any]) -> list[str]:
    """Step ids in plan order; for an invalid plan, those entries that have a string id (best effort)."""
    if plan_model is not None:
        return [s.id for s in plan_model.steps]
    steps = doc.get("steps")
    out: list[str] = []
    if isinstance(steps, list):
        for s in steps[:1024]:
            if isinstance(s, dict) and isinstance(s.get("id"), str) and s["id"] not in out:
                out.append(s["id"])
    return out
