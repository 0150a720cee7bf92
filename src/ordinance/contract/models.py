"""Immutable models of the v1 contract (CONTRACT §1–§3, §7.1).

The models carry the contract's constraints so that :mod:`ordinance.contract.schema`
can export them as JSON Schema. They are *built* only from documents that the
validator (:mod:`ordinance.contract.validate`) has accepted; the validator, not
pydantic, decides which rule a bad document breaks.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from .errors import ErrorCode, ErrorSeverity

__all__ = [
    "UUID4_PATTERN", "ACTION_PATTERN", "REQUIREMENT_PATTERN", "NAME_PATTERN", "POINTER_PATTERN",
    "MAX_TIMEOUT_MS", "DEFAULT_PLAN_TIMEOUT_MS", "DEFAULT_STEP_TIMEOUT_MS", "DEFAULT_MAX_PARALLEL", "MAX_SAFE_INT",
    "OnFailure", "TriggerType", "PlanStatus", "StepStatus", "CompensationStatus", "CompensationType",
    "RetryPolicy", "Binding", "CompensationSpec", "PlanStep", "Plan", "Principal", "ExecutionContext",
    "ExecutionError", "OperationReceipt", "StepResult", "PlanResult", "assemble",
]

UUID4_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
ACTION_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
REQUIREMENT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
#: 1–200 characters, none of them a control character (Unicode category Cc).
NAME_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
#: A non-empty RFC 6901 JSON Pointer.
POINTER_PATTERN = r"^(/([^~/]|~[01])*)+$"

MAX_TIMEOUT_MS = 86_400_000
DEFAULT_PLAN_TIMEOUT_MS = 3_600_000
DEFAULT_STEP_TIMEOUT_MS = 30_000
DEFAULT_MAX_PARALLEL = 8
MAX_SAFE_INT = 2**53 - 1

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_OPEN = ConfigDict(frozen=True, extra="forbid")

Uuid4 = Annotated[StrictStr, Field(pattern=UUID4_PATTERN)]
TimeoutMs = Annotated[StrictInt, Field(ge=1, le=MAX_TIMEOUT_MS)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=NAME_PATTERN)]


class OnFailure(str, Enum):
    HALT = "halt"
    SKIP = "skip"
    RETRY = "retry"


class TriggerType(str, Enum):
    MANUAL = "manual"
    API = "api"
    SCHEDULE = "schedule"
    EVENT = "event"
    NESTED = "nested"


class PlanStatus(str, Enum):
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILURE = "failure"


class StepStatus(str, Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_RUN = "not_run"
    CANCELLED = "cancelled"
    COMPENSATED = "compensated"


class CompensationStatus(str, Enum):
    NOT_REQUIRED = "not_required"
    VERIFIED = "verified"
    FAILED = "failed"
    SKIPPED = "skipped"


class CompensationType(str, Enum):
    """§7.3."""

    NONE = "none"
    GIT_CHECKOUT = "git_checkout"
    GIT_RESET_HEAD = "git_reset_head"
    GIT_RESET_SOFT = "git_reset_soft"
    GIT_RESET_HARD = "git_reset_hard"
    GIT_CLEAN = "git_clean"
    FS_DELETE = "fs_delete"
    FS_RESTORE = "fs_restore"
    CUSTOM = "custom"


RetryOn = Literal["STEP_FAILED", "STEP_TIMEOUT"]


class RetryPolicy(BaseModel):
    """§1.2. Delay before attempt n (n ≥ 2) = min(initial × multiplier^(n−2), max)."""

    model_config = _FROZEN

    max_attempts: Annotated[StrictInt, Field(ge=1, le=100)] = 3
    initial_delay_ms: Annotated[StrictInt, Field(ge=0, le=3_600_000)] = 200
    backoff_multiplier: Annotated[StrictInt | StrictFloat, Field(ge=1.0, le=10.0)] = 2.0
    max_delay_ms: Annotated[StrictInt, Field(ge=0, le=3_600_000)] = 10_000
    retry_on: Annotated[tuple[RetryOn, ...], Field(min_length=1)] = ("STEP_FAILED", "STEP_TIMEOUT")

    def delay_before(self, attempt: int) -> int:
        """Milliseconds to wait before attempt ``attempt`` (1-based); 0 for the first."""
        if attempt <= 1:
            return 0
        raw = self.initial_delay_ms * (float(self.backoff_multiplier) ** (attempt - 2))
        return int(min(raw, self.max_delay_ms))


class Binding(BaseModel):
    """§1.3: a value taken from a dependency's output."""

    model_config = _FROZEN

    step: Uuid4
    pointer: Annotated[StrictStr, Field(pattern=r"^(/([^~/]|~[01])*)*$")]


class CompensationSpec(BaseModel):
    """§7.4: the action that undoes a step."""

    model_config = _OPEN

    action: Annotated[StrictStr, Field(pattern=ACTION_PATTERN)]
    payload: dict[str, Any] = Field(default_factory=dict)
    timeout_ms: TimeoutMs | None = None


class PlanStep(BaseModel):
    """§1.1."""

    model_config = _OPEN

    id: Uuid4
    action: Annotated[StrictStr, Field(pattern=ACTION_PATTERN)]
    payload: dict[str, Any] = Field(default_factory=dict)
    depends_on: tuple[Uuid4, ...] = ()
    on_failure: OnFailure = OnFailure.HALT
    retry_policy: RetryPolicy | None = None
    timeout_ms: TimeoutMs | None = None
    inputs: dict[Annotated[str, Field(pattern=POINTER_PATTERN)], Binding] = Field(default_factory=dict)
    compensation: CompensationSpec | None = None
    name: Name | None = None

    @property
    def domain(self) -> str:
        return self.action.split(".", 1)[0]

    @property
    def effective_retry_policy(self) -> RetryPolicy | None:
        if self.on_failure is not OnFailure.RETRY:
            return None
        return self.retry_policy or RetryPolicy()


class Plan(BaseModel):
    """§1: a plan document. Build it with :func:`ordinance.contract.validate.parse_plan`."""

    model_config = _OPEN

    id: Uuid4
    version: Annotated[StrictInt, Field(ge=1, le=MAX_SAFE_INT)]
    name: Name
    created_at: Annotated[StrictInt, Field(ge=1, le=MAX_SAFE_INT)]
    steps: Annotated[tuple[PlanStep, ...], Field(min_length=1, max_length=1024)]
    context_requirements: Annotated[
        tuple[Annotated[StrictStr, Field(pattern=REQUIREMENT_PATTERN)], ...], Field(min_length=1)
    ]
    timeout_ms: TimeoutMs = DEFAULT_PLAN_TIMEOUT_MS
    max_parallel: Annotated[StrictInt, Field(ge=1, le=256)] = DEFAULT_MAX_PARALLEL
    compensate_on_failure: StrictBool = True
    description: Annotated[StrictStr, Field(max_length=4000)] | None = None
    metadata: dict[str, Any] | None = None

    def step_timeout_ms(self, step: PlanStep) -> int:
        """§1.1 default: 30 000, or the plan's timeout if smaller."""
        if step.timeout_ms is not None:
            return step.timeout_ms
        return min(DEFAULT_STEP_TIMEOUT_MS, self.timeout_ms)

    def to_document(self) -> dict[str, Any]:
        """The plan as a JSON document, with exactly the fields that were given (the digest input, §0.3)."""
        return self.model_dump(mode="json", exclude_unset=True)

    def step(self, step_id: str) -> PlanStep:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


class Principal(BaseModel):
    """§2/§6.1: who runs the plan."""

    model_config = _FROZEN

    user_id: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    token: Annotated[StrictStr, Field(min_length=1, max_length=512)]


class ExecutionContext(BaseModel):
    """§2."""

    model_config = _OPEN

    execution_id: Uuid4
    plan_id: Uuid4
    started_at: Annotated[StrictInt, Field(ge=1, le=MAX_SAFE_INT)]
    deadline_ms: Annotated[StrictInt, Field(ge=1, le=MAX_SAFE_INT)]
    environment: dict[str, Any]
    principal: Principal | None = None
    trigger_type: TriggerType = TriggerType.MANUAL

    def effective_deadline(self, plan: Plan) -> int:
        """§2: ``min(deadline_ms, started_at + plan.timeout_ms)``."""
        return min(self.deadline_ms, self.started_at + plan.timeout_ms)

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class ExecutionError(BaseModel):
    """§3.1."""

    model_config = _OPEN

    error_code: ErrorCode
    message: Annotated[str, Field(max_length=2000)]
    severity: ErrorSeverity
    recoverable: bool
    step_id: str | None = None
    occurred_at: int
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(
        cls,
        code: ErrorCode,
        message: str,
        *,
        occurred_at: int,
        step_id: str | None = None,
        details: dict[str, Any] | None = None,
        severity: ErrorSeverity | None = None,
        recoverable: bool | None = None,
    ) -> "ExecutionError":
        """An error with the §4 defaults for its code; the message is cut to 2000 characters."""
        if len(message) > 2000:
            message = message[:1997] + "..."
        return cls(
            error_code=code,
            message=message,
            severity=severity if severity is not None else code.severity,
            recoverable=code.recoverable if recoverable is None else recoverable,
            step_id=step_id,
            occurred_at=occurred_at,
            details=details or {},
        )


class OperationReceipt(BaseModel):
    """§7.1: what one attempt did, with digests of the state before and after."""

    model_config = _OPEN

    operation_id: str
    execution_id: str
    step_id: str
    attempt: int
    timestamp: int
    action: str
    idempotency_key: str
    pre_state_hash: str | None = None
    post_state_hash: str | None = None
    compensation_type: CompensationType = CompensationType.NONE
    compensation_command: str | None = None
    compensation_verified: bool = False
    status: Literal["succeeded", "failed", "timed_out", "replayed", "cancelled"] = "succeeded"


class StepResult(BaseModel):
    """§3: one per plan step, in plan order."""

    model_config = _OPEN

    step_id: str
    status: StepStatus
    attempts: int
    started_at: int | None
    completed_at: int | None
    duration_ms: int | None
    output: Any = None
    error: ExecutionError | None = None
    receipt: OperationReceipt | None = None
    compensation_status: CompensationStatus = CompensationStatus.NOT_REQUIRED


class PlanResult(BaseModel):
    """§3: the terminal outcome of an execution."""

    model_config = _OPEN

    plan_id: str
    plan_version: int
    execution_id: str
    status: PlanStatus
    started_at: int
    completed_at: int
    duration_ms: int
    steps_total: int
    steps_executed: int
    step_results: tuple[StepResult, ...]
    plan_digest: str
    run_id: str
    error: ExecutionError | None = None

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


_M = TypeVar("_M", bound=BaseModel)
_set_attribute = object.__setattr__


def assemble(cls: type[_M], values: dict[str, Any]) -> _M:
    """``cls.model_construct(**values)`` for values the engine built itself, already of the right types.

    When ``values`` names every field (in any order) and the model has no private attributes or post-init
    hook, the instance is put together directly, fields in declaration order: what ``model_construct`` does,
    without its per-field default and alias handling (about six times faster, which matters once per attempt).
    Anything else goes through ``model_construct``. Nothing is validated either way.
    """
    names = _field_names(cls)
    if names is None or values.keys() != names.keys():
        return cls.model_construct(**values)
    m = cls.__new__(cls)
    _set_attribute(m, "__dict__", {name: values[name] for name in names})  # in field order
    _set_attribute(m, "__pydantic_fields_set__", set(names))
    _set_attribute(m, "__pydantic_extra__", None)
    _set_attribute(m, "__pydantic_private__", None)
    return m


_FIELD_NAMES: dict[type, dict[str, None] | None] = {}


def _field_names(cls: type[BaseModel]) -> dict[str, None] | None:
    """The model's field names in order (a dict, for its set-like keys), or None if it cannot be assembled."""
    try:
        return _FIELD_NAMES[cls]
    except KeyError:
        ok = not cls.__pydantic_post_init__ and not cls.__private_attributes__
        names = _FIELD_NAMES[cls] = dict.fromkeys(cls.model_fields) if ok else None
        return names
