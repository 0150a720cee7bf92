"""``execute_plan``: the only way one plan runs another (CONTRACT §5.4)."""

from __future__ import annotations

import hashlib
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from ..actions.registry import ActionContext, ActionFailure, ActionRegistry
from ..contract.models import UUID4_PATTERN, PlanStatus
from .clock import now_ms

__all__ = ["ExecutePlanInput", "register_execute_plan", "child_execution_id"]


class PlanRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: StrictStr = Field(pattern=UUID4_PATTERN)
    version: StrictInt = Field(ge=1)


class ExecutePlanInput(BaseModel):
    """``{"plan": <Plan>}`` or ``{"plan_ref": {"id", "version"}}``, the child's ``environment``, ``accept_partial``."""

    model_config = ConfigDict(extra="forbid")
    plan: Optional[dict[str, Any]] = None
    plan_ref: Optional[PlanRef] = None
    environment: dict[str, Any] = Field(default_factory=dict)
    accept_partial: StrictBool = False

    @model_validator(mode="after")
    def _one_source(self) -> "ExecutePlanInput":
        if (self.plan is None) == (self.plan_ref is None):
            raise ValueError("give exactly one of plan or plan_ref")
        return self


def child_execution_id(parent_execution_id: str, step_id: str, attempt: int) -> str:
    """A UUID-v4-formatted id derived from the parent's (no hidden randomness; unique per attempt)."""
    h = bytearray(hashlib.sha256(f"{parent_execution_id}/{step_id}/{attempt}".encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x40
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


async def execute_plan(payload: ExecutePlanInput, ctx: ActionContext) -> dict[str, Any]:
    parent = ctx.runtime
    if parent is None:
        raise ActionFailure("execute_plan needs the engine runtime", recoverable=False)
    engine = parent.engine
    if payload.plan_ref is not None:
        found = engine.store.get_plan(payload.plan_ref.id, payload.plan_ref.version)
        if found is None:
            raise ActionFailure(
                f"plan_ref {payload.plan_ref.id} version {payload.plan_ref.version} is not in the registry",
                recoverable=False,
            )
        child_doc = found[1]
    else:
        child_doc = payload.plan
    now = now_ms()
    timeout = child_doc.get("timeout_ms") if isinstance(child_doc, dict) else None
    timeout = timeout if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0 else 3_600_000
    deadline = min(parent.deadline_ms, now + timeout)
    context: dict[str, Any] = {
        "execution_id": child_execution_id(ctx.execution_id, ctx.step_id, ctx.attempt),
        "plan_id": child_doc.get("id") if isinstance(child_doc, dict) else None,
        "started_at": now,
        "deadline_ms": max(deadline, now + timeout),
        "environment": payload.environment,
        "trigger_type": "nested",
    }
    principal = parent.settings.principal
    if principal is not None:
        context["principal"] = principal.model_dump()
    result = await engine.run_async(
        child_doc, context, envelope=parent.settings.envelope, on_event=None,
        _parent=(ctx.execution_id, ctx.step_id), _depth=ctx.nesting_depth + 1, _deadline_cap=deadline,
    )
    doc = result.to_document()
    if result.status is PlanStatus.FAILURE or (result.status is PlanStatus.PARTIAL and not payload.accept_partial):
        err = result.error
        raise ActionFailure(
            f"nested plan ended {result.status.value}" + (f": {err.error_code.value}: {err.message}" if err else ""),
            recoverable=bool(err.recoverable) if err else False,
            details={"child_execution_id": result.execution_id, "child_status": result.status.value,
                     "child_error_code": err.error_code.value if err else None, "child_result": doc},
        )
    return doc


def register_execute_plan(registry: ActionRegistry) -> None:
    registry.action("execute_plan", input=ExecutePlanInput)(execute_plan)
