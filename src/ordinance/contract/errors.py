"""The eleven reserved error codes of CONTRACT §4 and their defaults."""

from __future__ import annotations

from enum import Enum

__all__ = ["ErrorCode", "ErrorSeverity", "SEVERITY_RANK"]


class ErrorSeverity(str, Enum):
    WARN = "warn"
    ERROR = "error"
    FATAL = "fatal"


SEVERITY_RANK = {ErrorSeverity.WARN: 0, ErrorSeverity.ERROR: 1, ErrorSeverity.FATAL: 2}


class ErrorCode(str, Enum):
    """Exactly the codes of §4; no others are used at the plan level."""

    PLAN_INVALID = "PLAN_INVALID"
    CONTEXT_INVALID = "CONTEXT_INVALID"
    CONTEXT_MISSING = "CONTEXT_MISSING"
    ACTION_NOT_FOUND = "ACTION_NOT_FOUND"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    POLICY_DENIED = "POLICY_DENIED"
    PRECONDITION_FAILED = "PRECONDITION_FAILED"
    STEP_FAILED = "STEP_FAILED"
    STEP_TIMEOUT = "STEP_TIMEOUT"
    PLAN_TIMEOUT = "PLAN_TIMEOUT"
    EXECUTION_ABORTED = "EXECUTION_ABORTED"

    @property
    def severity(self) -> ErrorSeverity:
        return _DEFAULTS[self][0]

    @property
    def recoverable(self) -> bool:
        return _DEFAULTS[self][1]


_F, _E = ErrorSeverity.FATAL, ErrorSeverity.ERROR
_DEFAULTS: dict[ErrorCode, tuple[ErrorSeverity, bool]] = {
    ErrorCode.PLAN_INVALID: (_F, False),
    ErrorCode.CONTEXT_INVALID: (_F, False),
    ErrorCode.CONTEXT_MISSING: (_F, False),
    ErrorCode.ACTION_NOT_FOUND: (_F, False),
    ErrorCode.INVALID_PAYLOAD: (_E, False),
    ErrorCode.POLICY_DENIED: (_F, False),
    ErrorCode.PRECONDITION_FAILED: (_F, False),
    ErrorCode.STEP_FAILED: (_E, True),
    ErrorCode.STEP_TIMEOUT: (_E, True),
    ErrorCode.PLAN_TIMEOUT: (_F, True),
    ErrorCode.EXECUTION_ABORTED: (_F, True),
}
