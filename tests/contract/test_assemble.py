"""models.assemble: the engine's fast model_construct gives the very same models (§3, §7.1 documents)."""

from __future__ import annotations

import pydantic
import pytest

from ordinance.contract.errors import ErrorCode
from ordinance.contract.models import (
    CompensationStatus, CompensationType, ExecutionError, OperationReceipt, StepResult, StepStatus, assemble,
)

RECEIPT = {
    "status": "succeeded", "operation_id": "op_1", "execution_id": "e", "step_id": "s", "attempt": 2, "timestamp": 5,
    "action": "fs.write", "idempotency_key": "sha256:k", "pre_state_hash": "sha256:a", "post_state_hash": "sha256:b",
    "compensation_type": CompensationType.FS_RESTORE, "compensation_command": None, "compensation_verified": False,
}


def test_s7_1_assembled_receipt_equals_model_construct():
    fast, slow = assemble(OperationReceipt, dict(RECEIPT)), OperationReceipt.model_construct(**RECEIPT)
    assert fast == slow
    assert list(fast.__dict__) == list(OperationReceipt.model_fields)  # declaration order, whatever the input's
    assert fast.model_dump(mode="json") == slow.model_dump(mode="json")
    assert fast.model_fields_set == slow.model_fields_set
    assert repr(fast) == repr(slow)
    with pytest.raises(pydantic.ValidationError):
        fast.attempt = 3  # still frozen


def test_s3_assembled_step_result_nests_and_serialises_like_model_construct():
    receipt = assemble(OperationReceipt, dict(RECEIPT))
    err = ExecutionError.of(ErrorCode.STEP_FAILED, "boom", occurred_at=1, step_id="s")
    values = {"step_id": "s", "status": StepStatus.FAILED, "attempts": 1, "started_at": 1, "completed_at": 2,
              "duration_ms": 1, "output": None, "error": err, "receipt": receipt,
              "compensation_status": CompensationStatus.NOT_REQUIRED}
    fast, slow = assemble(StepResult, dict(values)), StepResult.model_construct(**values)
    assert fast == slow
    assert fast.model_dump(mode="json") == slow.model_dump(mode="json")
    assert StepResult.model_validate(fast.model_dump(mode="json")) == fast  # and it is a valid StepResult


def test_assemble_with_fields_missing_falls_back_to_model_construct_defaults():
    partial = {k: v for k, v in RECEIPT.items() if k not in ("compensation_verified", "status")}
    r = assemble(OperationReceipt, partial)
    assert r.compensation_verified is False and r.status == "succeeded"
    assert r == OperationReceipt.model_construct(**partial)
