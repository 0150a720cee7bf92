"""Mutable per-step bookkeeping of one execution, and how it becomes a StepResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..actions.registry import ActionSpec, StateSnapshot
from ..contract.models import (
    CompensationStatus, ExecutionError, OperationReceipt, PlanStep, StepResult, StepStatus, assemble,
)

__all__ = ["StepState", "EMPTY_STATE_DIGEST"]

from ..contract.canonical import digest

#: The state digest of an action that declares no state (§7.1): a constant, so pre == post.
EMPTY_STATE_DIGEST = digest({"declared_state": None})


@dataclass(eq=False)
class StepState:
    index: int
    step: PlanStep
    spec: ActionSpec | None
    timeout_ms: int
    status: str = "pending"  # pending | running | succeeded | failed | skipped | not_run | cancelled | compensated
    attempts: int = 0
    started_at: int | None = None
    completed_at: int | None = None
    output: Any = None
    error: ExecutionError | None = None
    receipt: OperationReceipt | None = None
    snapshot: StateSnapshot | None = None  # state before the succeeded attempt (for compensation)
    resolved_payload: dict[str, Any] | None = None
    completion_order: int | None = None
    compensation_status: CompensationStatus = CompensationStatus.NOT_REQUIRED
    in_attempt: bool = False  # an attempt has started and not finished
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.step.id

    def to_result(self) -> StepResult:
        status = self.status
        if status in ("pending", "running"):
            status = "not_run" if self.attempts == 0 else "cancelled"
        duration = None
        if self.started_at is not None and self.completed_at is not None:
            duration = max(0, self.completed_at - self.started_at)
        return assemble(StepResult, {
            "step_id": self.step.id,
            "status": StepStatus(status),
            "attempts": self.attempts,
            "started_at": self.started_at,
            "completed_at": self.completed_at if self.started_at is not None else None,
            "duration_ms": duration,
            "output": self.output,
            "error": self.error,
            "receipt": self.receipt,
            "compensation_status": self.compensation_status,
        })
