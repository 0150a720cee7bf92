"""Outcome classification and the three fixed rule sets (CONTRACT §5.5, §5.6, §3.1).

Every action of a rule set is journaled as ``outcome.<name>`` in the stated order
(R-RULESET-ORDER); the last record of an execution is ``execution.result`` with the
digest of its PlanResult (§8).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from ..contract.canonical import canonical_bytes, digest_bytes
from ..contract.errors import SEVERITY_RANK, ErrorCode
from ..contract.models import ExecutionError, PlanResult, PlanStatus
from ..store.base import ExecutionUpdate, StoreError
from .clock import now_ms

if TYPE_CHECKING:  # pragma: no cover
    pass

__all__ = ["RULE_SETS", "pick_error", "check_result", "run_rule_set", "Outcomeable"]

log = logging.getLogger("ordinance.engine")

RULE_SETS: dict[PlanStatus, tuple[str, ...]] = {
    PlanStatus.SUCCESS: (
        "record_completion", "build_result", "validate_result", "persist_result", "emit_event", "update_registry",
        "release_resources", "return_result",
    ),
    PlanStatus.PARTIAL: (
        "record_completion", "collect_outcomes", "classify_errors", "select_error", "build_result", "validate_result",
        "persist_result", "emit_event", "update_registry", "release_resources",
    ),
    PlanStatus.FAILURE: (
        "stop_scheduling", "stop_in_flight", "classify_errors", "compensate", "record_completion", "build_result",
        "validate_result", "persist_result", "update_registry", "emit_event", "release_resources",
        "notify_error_handler", "return_result",
    ),
}

_REGISTRY_STATUS = {PlanStatus.SUCCESS: "completed", PlanStatus.PARTIAL: "partial", PlanStatus.FAILURE: "failed"}


def pick_error(errors: list[ExecutionError], *, now: int) -> ExecutionError | None:
    """R-RESULT-PICK: the highest-severity step error, earliest in plan order on a tie."""
    best: ExecutionError | None = None
    for err in errors:
        if best is None or SEVERITY_RANK[err.severity] > SEVERITY_RANK[best.severity]:
            best = err
    return best


def check_result(result: PlanResult, document: dict[str, Any] | None = None) -> list[str]:
    """The result's own validation (§5.6 validate_result): invariants a correct engine always keeps."""
    return _check_result(result, document)[0]


def _check_result(result: PlanResult, document: dict[str, Any] | None = None) -> tuple[list[str], str, bytes | None]:
    """(problems, the document's digest — "" when it has none, its canonical bytes — None when it has none)."""
    problems: list[str] = []
    if len(result.step_results) != result.steps_total:
        problems.append("step_results does not have one entry per plan step")
    statuses = [sr.status.value for sr in result.step_results]
    if result.status is PlanStatus.SUCCESS:
        if result.error is not None:
            problems.append("a success carries an error (R-RESULT-ERROR)")
        if any(s != "succeeded" for s in statuses):
            problems.append("a success has a step that did not succeed")
    else:
        if result.error is None:
            problems.append(f"a {result.status.value} has no error (R-RESULT-ERROR)")
    if result.status is PlanStatus.PARTIAL:
        if "succeeded" not in statuses:
            problems.append("a partial has no succeeded step")
        if not any(s in ("skipped", "not_run") for s in statuses):
            problems.append("a partial has no skipped or not_run step")
    executed = sum(1 for sr in result.step_results if sr.attempts > 0)
    if executed != result.steps_executed:
        problems.append("steps_executed does not count the steps with a started attempt")
    if result.completed_at < result.started_at:
        problems.append("completed_at is before started_at")
    rdigest, body = "", None
    try:
        body = canonical_bytes(document if document is not None else result.to_document())
        rdigest = digest_bytes(body)
    except (TypeError, ValueError) as exc:
        problems.append(f"the result is not canonical JSON: {exc}")
    return problems, rdigest, body


class Outcomeable(Protocol):
    """What a rule set needs of an execution (admitted, or rejected at admission)."""

    execution_id: str
    halting_error: ExecutionError | None

    def record(self, kind: str, data: dict[str, Any], *, step_id: str | None = None, attempt: int | None = None) -> None: ...
    def commit_now(self) -> None: ...
    def emit(self, name: str, data: dict[str, Any], *, step_id: str | None = None) -> None: ...
    def stop_scheduling(self) -> dict[str, Any]: ...
    async def stop_in_flight(self) -> dict[str, Any]: ...
    async def compensate(self) -> dict[str, Any]: ...
    def step_errors(self) -> list[ExecutionError]: ...
    def pick_error(self, status: PlanStatus) -> ExecutionError | None: ...
    def build_result(self, status: PlanStatus, error: ExecutionError | None, completed_at: int) -> PlanResult: ...


async def run_rule_set(x: Any, status: PlanStatus, *, error_handler: Any = None) -> PlanResult:
    """Run the rule set for ``status``; returns the PlanResult. Never raises for store faults."""
    try:
        return await _run(x, status, error_handler)
    except _ResultInvalid as exc:
        x.halting_error = ExecutionError.of(
            ErrorCode.EXECUTION_ABORTED, f"internal error: the result failed its own validation: {'; '.join(exc.problems)}",
            occurred_at=now_ms(), details={"reason": "internal_error", "problems": exc.problems},
        )
        return await _run(x, PlanStatus.FAILURE, error_handler)


class _ResultInvalid(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


async def _run(x: Any, status: PlanStatus, error_handler: Any) -> PlanResult:
    names = RULE_SETS[status]
    result: PlanResult | None = None
    doc: dict[str, Any] | None = None
    rdigest = ""
    error: ExecutionError | None = None
    completed_at = now_ms()
    compensation: dict[str, Any] | None = None
    store_failed: StoreError | None = None
    for name in names:
        data: dict[str, Any] = {}
        if name == "stop_scheduling":
            data = x.stop_scheduling()
        elif name == "stop_in_flight":
            data = await x.stop_in_flight()
        elif name == "classify_errors":
            data = {"errors": [
                {"step_id": e.step_id, "error_code": e.error_code.value, "severity": e.severity.value,
                 "recoverable": e.recoverable} for e in x.step_errors()
            ]}
            if x.halting_error is not None:
                data["halting"] = x.halting_error.error_code.value
        elif name == "compensate":
            compensation = await x.compensate()
            data = compensation
        elif name == "record_completion":
            completed_at = now_ms()
            data = {"completed_at": completed_at}
        elif name == "collect_outcomes":
            counts: dict[str, int] = {}
            for st in getattr(x, "states", []):
                counts[st.status] = counts.get(st.status, 0) + 1
            data = {"counts": counts}
        elif name == "select_error":
            error = x.pick_error(status)
            data = {"error_code": error.error_code.value if error else None, "step_id": error.step_id if error else None}
        elif name == "build_result":
            if error is None:
                error = x.pick_error(status)
            if error is not None and compensation and (compensation.get("verified") or compensation.get("failed")):
                error = error.model_copy(update={"details": {**error.details, "compensation": compensation}})
            result = x.build_result(status, error, completed_at)
            doc = result.to_document()
            data = {"status": status.value}
        elif name == "validate_result":
            assert result is not None
            # encoded once, here: the same canonical bytes give the digest and are what the store keeps
            problems, rdigest, rbody = _check_result(result, doc)
            data = {"ok": not problems, "problems": problems}
            if problems:
                x.record(f"outcome.{name}", data)
                raise _ResultInvalid(problems)
        elif name == "persist_result":
            assert result is not None
            x.batch.results.append((x.execution_id, rbody if rbody is not None else doc, rdigest))
            data = {"result_digest": rdigest}
            x.record(f"outcome.{name}", data)
            try:
                x.commit_now()  # the result is durable before its outcome event (§5.8)
            except StoreError as exc:
                store_failed = exc
                break
            continue
        elif name == "emit_event":
            event_name = f"plan_execution_{status.value}"
            x.emit(event_name, {"status": status.value,
                                "error_code": error.error_code.value if error else None})
            data = {"event": event_name}
        elif name == "update_registry":
            x.batch.updates.append(ExecutionUpdate(x.execution_id, status.value, now_ms()))
            data = {"registry_status": _REGISTRY_STATUS[status]}
        elif name == "release_resources":
            x.batch.updates.append(ExecutionUpdate(x.execution_id, status.value, now_ms(), clear_lease=True))
            data = {"lease": "released"}
        elif name == "notify_error_handler":
            notified = False
            if error_handler is not None and result is not None:
                try:
                    error_handler(result)
                    notified = True
                except Exception:  # noqa: BLE001 - best effort
                    log.exception("error handler failed")
            data = {"notified": notified}
        elif name == "return_result":
            assert result is not None
            data = {"result_digest": rdigest}
        x.record(f"outcome.{name}", data)
    assert result is not None
    if store_failed is None:
        x.record("execution.result", {"result_digest": rdigest, "status": result.status.value})
        try:
            x.commit_now()
        except StoreError as exc:
            store_failed = exc
    if store_failed is not None:
        # The result could not be made durable: say so. The execution keeps its lease row and recovery closes it.
        lost = bool(getattr(x, "lease_lost", False))
        err = ExecutionError.of(
            ErrorCode.EXECUTION_ABORTED, f"the result could not be persisted: {store_failed}", occurred_at=now_ms(),
            details={"reason": "lease_lost" if lost else "store_error", "unpersisted_status": result.status.value},
        )
        result = result.model_copy(update={"status": PlanStatus.FAILURE, "error": err})
    return result
