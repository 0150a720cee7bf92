"""§3 PlanResult, §3.1 ExecutionError, §4 error codes."""

from __future__ import annotations

from typing import Any

from ..harness import Harness, code_of, describe, sid, statuses
from ..registry import check, ensure, equal

_RESULT_REQUIRED = {"plan_id", "plan_version", "execution_id", "status", "started_at", "completed_at", "duration_ms",
                    "steps_total", "steps_executed", "step_results", "plan_digest", "run_id", "error"}
_STEP_FIELDS = {"step_id", "status", "attempts", "started_at", "completed_at", "duration_ms", "output", "error",
                "receipt", "compensation_status"}
_ERROR_FIELDS = {"error_code", "message", "severity", "recoverable", "step_id", "occurred_at", "details"}
_STEP_STATUSES = {"succeeded", "failed", "skipped", "not_run", "cancelled", "compensated"}
_COMP_STATUSES = {"not_required", "verified", "failed", "skipped"}

#: §4, verbatim: code -> (severity, recoverable)
CODES: dict[str, tuple[str, bool]] = {
    "PLAN_INVALID": ("fatal", False), "CONTEXT_INVALID": ("fatal", False), "CONTEXT_MISSING": ("fatal", False),
    "ACTION_NOT_FOUND": ("fatal", False), "INVALID_PAYLOAD": ("error", False), "POLICY_DENIED": ("fatal", False),
    "PRECONDITION_FAILED": ("fatal", False), "STEP_FAILED": ("error", True), "STEP_TIMEOUT": ("error", True),
    "PLAN_TIMEOUT": ("fatal", True), "EXECUTION_ABORTED": ("fatal", True),
}


def _three(h: Harness) -> dict[str, Any]:
    """A success, a partial and a failure, each with a few kinds of steps."""
    ok = h.run(h.plan({"action": "control.echo", "payload": {"value": 1}},
                      {"action": "control.noop", "depends_on": [sid(1)]}))
    partial = h.run(h.plan({"action": "control.noop"},
                           {"action": "control.fail", "on_failure": "skip"},
                           {"action": "control.noop", "depends_on": [sid(2)]}))
    failure = h.run(h.plan({"action": "control.noop"},
                           {"action": "control.fail", "depends_on": [sid(1)]},
                           {"action": "control.noop", "depends_on": [sid(2)]}))
    return {"success": ok, "partial": partial, "failure": failure}


def _check_error_doc(err: dict[str, Any], where: str) -> None:
    equal(set(err), _ERROR_FIELDS, f"{where}: ExecutionError fields")
    ensure(err["error_code"] in CODES, f"{where}: error_code {err['error_code']!r} is not one of the eleven codes")
    ensure(err["severity"] in ("warn", "error", "fatal"), f"{where}: severity {err['severity']!r}")
    ensure(isinstance(err["recoverable"], bool), f"{where}: recoverable is not a boolean")
    ensure(isinstance(err["message"], str) and len(err["message"]) <= 2000, f"{where}: message longer than 2000")
    ensure(isinstance(err["details"], dict), f"{where}: details is not an object")
    ensure(isinstance(err["occurred_at"], int) and err["occurred_at"] > 0, f"{where}: occurred_at")


@check("§3", "required fields, one StepResult per step in plan order, counts and durations consistent")
def _(h: Harness) -> str:
    for name, r in _three(h).items():
        doc = r.to_document()
        missing = _RESULT_REQUIRED - set(doc)
        ensure(not missing, f"{name}: PlanResult lacks {sorted(missing)}")
        equal(doc["status"], name, f"{name}: status")
        equal(doc["steps_total"], len(doc["step_results"]), f"{name}: steps_total")
        equal([s["step_id"] for s in doc["step_results"]], [sid(i) for i in range(1, doc["steps_total"] + 1)],
              f"{name}: step_results order")
        equal(doc["steps_executed"], sum(1 for s in doc["step_results"] if s["attempts"] > 0), f"{name}: steps_executed")
        equal(doc["duration_ms"], doc["completed_at"] - doc["started_at"], f"{name}: duration_ms")
        for s in doc["step_results"]:
            where = f"{name} step {s['step_id'][-2:]}"
            equal(set(s), _STEP_FIELDS, f"{where}: StepResult fields")
            ensure(s["status"] in _STEP_STATUSES, f"{where}: status {s['status']!r}")
            ensure(s["compensation_status"] in _COMP_STATUSES, f"{where}: compensation_status")
            if s["status"] == "not_run":
                equal((s["attempts"], s["started_at"], s["duration_ms"], s["output"]), (0, None, None, None),
                      f"{where}: a not_run step's attempts, started_at, duration_ms and output")
            else:
                ensure(s["attempts"] >= 1 and isinstance(s["duration_ms"], int), f"{where}: attempts / duration_ms")
            if s["error"] is not None:
                _check_error_doc(s["error"], where)
        stored = h.store.get_result(r.execution_id)
        equal(stored, doc, f"{name}: the stored result")
    return "success, partial and failure results"


@check("§3", "skipped = tolerated failure; not_run = never started; cancelled = stopped in flight")
def _(h: Harness) -> None:
    r = h.run(h.plan({"action": "control.fail", "on_failure": "skip"},
                     {"action": "control.noop", "depends_on": [sid(1)]},
                     {"action": "control.sleep", "payload": {"ms": 10_000}},
                     {"action": "control.fail", "depends_on": [sid(1)]},
                     {"action": "control.fail", "payload": {"message": "halt"}}))
    equal(statuses(r), ["skipped", "not_run", "cancelled", "not_run", "failed"], describe(r))
    equal(r.step_results[0].error.severity.value, "warn", "severity of a skipped step's error")


@check("R-RESULT-ERROR", "error is null for success and an ExecutionError for partial and failure")
def _(h: Harness) -> None:
    for name, r in _three(h).items():
        err = r.to_document()["error"]
        if name == "success":
            equal(err, None, "error of a success")
        else:
            ensure(err is not None, f"a {name} has no error")
            _check_error_doc(err, name)


@check("§3.1", "ExecutionError: fields, message ≤ 2000, step_id, halting error of a failure")
def _(h: Harness) -> None:
    r = h.run(h.plan({"action": "control.noop"}, {"action": "conformance.long_error", "depends_on": [sid(1)]}))
    equal(code_of(r), "STEP_FAILED", describe(r))
    doc = r.to_document()
    _check_error_doc(doc["error"], "plan error")
    equal(doc["error"]["step_id"], sid(2), "step_id of the halting error")
    equal(doc["error"], doc["step_results"][1]["error"], "the plan error of a failure is the halting step error")
    ensure(len(doc["error"]["message"]) <= 2000, "message over 2000 characters")
    adm = h.run(h.plan({"action": "no.such.action"}))
    equal(adm.error.step_id, None, "step_id of an admission error")
    _check_error_doc(adm.to_document()["error"], "admission error")


@check("R-RESULT-PICK", "partial: the highest-severity step error, earliest in plan order on a tie")
def _(h: Harness) -> str:
    # step 2 fails last but comes first in plan order; step 3 fails first
    r = h.run(h.plan({"action": "control.noop"},
                     {"action": "control.fail", "payload": {"message": "second in plan order"}, "on_failure": "skip",
                      "depends_on": [sid(4)]},
                     {"action": "control.fail", "payload": {"message": "third in plan order"}, "on_failure": "skip"},
                     {"action": "control.sleep", "payload": {"ms": 30}}))
    equal(r.status.value, "partial", describe(r))
    equal(r.error.step_id if r.error else None, sid(2), "step of the partial's error (tie: earliest in plan order)")
    from ...contract.errors import ErrorCode, ErrorSeverity
    from ...contract.models import ExecutionError
    from ...engine.outcome import pick_error

    errs = [ExecutionError.of(ErrorCode.STEP_FAILED, "a", occurred_at=1, step_id=sid(1)).model_copy(
                update={"severity": ErrorSeverity.WARN}),
            ExecutionError.of(ErrorCode.STEP_FAILED, "b", occurred_at=2, step_id=sid(2)),
            ExecutionError.of(ErrorCode.PLAN_TIMEOUT, "c", occurred_at=3, step_id=sid(3)),
            ExecutionError.of(ErrorCode.EXECUTION_ABORTED, "d", occurred_at=0, step_id=sid(4))]
    picked = pick_error(errs, now=10)
    equal(picked.step_id if picked else None, sid(3), "pick_error: highest severity (fatal), earliest of the fatal ones")
    return "engine and rule function agree"


@check("§4", "exactly the eleven codes, with the contract's severity and recoverable")
def _(h: Harness) -> None:
    from ...contract.errors import ErrorCode

    equal({c.value for c in ErrorCode}, set(CODES), "the set of error codes")
    for c in ErrorCode:
        equal((c.severity.value, c.recoverable), CODES[c.value], f"severity and recoverable of {c.value}")


@check("§4", "the engine reports each code with its severity and recoverable flag (skip → warn)")
def _(h: Harness) -> str:
    seen: dict[str, Any] = {}
    runs = [
        h.plan({"action": "control.noop", "bogus": 1}),
        h.plan({"action": "no.such"}),
        h.plan({"action": "control.sleep", "payload": {"ms": "1"}}),
        h.plan({"action": "fs.write", "payload": {"path": "../x", "content": ""}}),
        h.plan({"action": "control.fail"}),
        h.plan({"action": "control.sleep", "payload": {"ms": 5_000}, "timeout_ms": 50}),
        h.plan({"action": "control.sleep", "payload": {"ms": 5_000}}, timeout_ms=60),
    ]
    for plan in runs:
        r = h.run(plan)
        seen[code_of(r)] = r.error
    r = h.run(h.plan({"action": "control.noop"}, context_requirements=["NOT_THERE"]))
    seen[code_of(r)] = r.error
    r = h.run(h.plan({"action": "control.noop"}), {"execution_id": "x"})
    seen[code_of(r)] = r.error
    for code, err in seen.items():
        ensure(code in CODES, f"the engine used {code!r}, which is not one of the eleven codes")
        equal((err.severity.value, err.recoverable), CODES[code], f"severity and recoverable of {code}")
    expected = {"PLAN_INVALID", "ACTION_NOT_FOUND", "INVALID_PAYLOAD", "POLICY_DENIED", "STEP_FAILED",
                "STEP_TIMEOUT", "PLAN_TIMEOUT", "CONTEXT_MISSING", "CONTEXT_INVALID"}
    equal(set(seen), expected, "codes produced by the sample runs")
    skipped = h.run(h.plan({"action": "control.noop"}, {"action": "control.fail", "on_failure": "skip"}))
    equal(skipped.step_results[1].error.severity.value, "warn", "severity of a skipped step")
    return f"{len(seen)} codes produced and checked"
