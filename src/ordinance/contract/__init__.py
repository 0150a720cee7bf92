"""The contract's pure data and rules: no I/O, no engine, no clock."""

from .canonical import ZERO_DIGEST, canonical_bytes, canonical_json, digest, digest_bytes, plan_digest, run_id
from .errors import ErrorCode, ErrorSeverity
from .models import (
    Binding,
    CompensationSpec,
    CompensationStatus,
    CompensationType,
    ExecutionContext,
    ExecutionError,
    OnFailure,
    OperationReceipt,
    Plan,
    PlanResult,
    PlanStatus,
    PlanStep,
    Principal,
    RetryPolicy,
    StepResult,
    StepStatus,
    TriggerType,
)

__all__ = [
    "ZERO_DIGEST", "canonical_bytes", "canonical_json", "digest", "digest_bytes", "plan_digest", "run_id",
    "ErrorCode", "ErrorSeverity", "Binding", "CompensationSpec", "CompensationStatus", "CompensationType",
    "ExecutionContext", "ExecutionError", "OnFailure", "OperationReceipt", "Plan", "PlanResult", "PlanStatus",
    "PlanStep", "Principal", "RetryPolicy", "StepResult", "StepStatus", "TriggerType",
]
