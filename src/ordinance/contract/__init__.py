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
from .jsonio import DocumentError, load_document
from .legacy import convert_legacy, validate_legacy
from .schema import context_schema, plan_schema, result_schema
from .validate import ContextInvalid, PlanInvalid, Violation, parse_context, parse_plan, validate_context, validate_plan

__all__ = [
    "ZERO_DIGEST", "canonical_bytes", "canonical_json", "digest", "digest_bytes", "plan_digest", "run_id",
    "ErrorCode", "ErrorSeverity", "Binding", "CompensationSpec", "CompensationStatus", "CompensationType",
    "ExecutionContext", "ExecutionError", "OnFailure", "OperationReceipt", "Plan", "PlanResult", "PlanStatus",
    "PlanStep", "Principal", "RetryPolicy", "StepResult", "StepStatus", "TriggerType",
    "DocumentError", "load_document", "convert_legacy", "validate_legacy", "context_schema", "plan_schema",
    "result_schema", "ContextInvalid", "PlanInvalid", "Violation", "parse_context", "parse_plan",
    "validate_context", "validate_plan",
]
