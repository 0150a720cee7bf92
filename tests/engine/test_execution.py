"""End-to-end execution through the Python API (CONTRACT §5, §1.2, §1.3, §3)."""

from __future__ import annotations

import uuid


from ordinance.contract import ErrorCode, PlanStatus
from ordinance.engine.outcome import RULE_SETS
from support import ENV, PLAN_ID, journal_kinds, journal_records, make_plan, sid


def outcome_kinds(kinds: list[str]) -> list[str]:
    return [k.split(".", 1)[1] for k in kinds if k.startswith("outcome.")]


def test_s5_5_success_all_steps_succeeded(engine, store):
    plan = make_plan({"action": "control.noop"}, {"action": "control.echo", "payload": {"value": 1}, "depends_on": [sid(1)]})
    r = engine.run(plan, environment=ENV)
    assert r.status is PlanStatus.SUCCESS
    assert r.error is None  # R-RESULT-ERROR
    assert [s.status.value for s in r.step_results] == ["succeeded", "succeeded"]
    assert r.steps_total == 2 and r.steps_executed == 2
    assert r.step_results[1].output == {"value": 1}
    assert store.get_result(r.execution_id)["status"] == "success"
    assert store.get_execution(r.execution_id).status == "success"


def test_s5_6_R_RULESET_ORDER_success(engine, store):
    r = engine.run(make_plan({"action": "control.noop"}), environment=ENV)
    kinds = journal_kinds(store, r.execution_id)
    assert outcome_kinds(kinds) == list(RULE_SETS[PlanStatus.SUCCESS])
    assert len(RULE_SETS[PlanStatus.SUCCESS]) == 8
    assert kinds[-1] == "execution.result"  # §8: the last record holds the result digest


def test_s5_6_R_RULESET_ORDER_partial(engine, store):
    plan = make_plan({"action": "control.noop"}, {"action": "control.fail", "on_failure": "skip"})
    r = engine.run(plan, environment=ENV)
    assert r.status is PlanStatus.PARTIAL
    assert outcome_kinds(journal_kinds(store, r.execution_id)) == list(RULE_SETS[PlanStatus.PARTIAL])
    assert len(RULE_SETS[PlanStatus.PARTIAL]) == 10


def test_s5_6_R_RULESET_ORDER_failure(engine, store):
    r = engine.run(make_plan({"action": "control.fail", "payload": {"message": "boom"}}), environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert outcome_kinds(journal_kinds(store, r.execution_id)) == list(RULE_SETS[PlanStatus.FAILURE])
    assert len(RULE_SETS[PlanStatus.FAILURE]) == 13
    assert r.error.error_code is ErrorCode.STEP_FAILED and r.error.message == "boom"


def test_s5_2_halt_stops_plan_and_dependents_not_run(engine):
    plan = make_plan(
        {"action": "control.fail"},
        {"action": "control.noop", "depends_on": [sid(1)]},
    )
    r = engine.run(plan, environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert [s.status.value for s in r.step_results] == ["failed", "not_run"]
    assert r.steps_executed == 1


def test_s5_2_skip_marks_transitive_dependents_not_run_and_independent_branch_goes_on(engine):
    plan = make_plan(
        {"action": "control.fail", "on_failure": "skip"},
        {"action": "control.noop", "depends_on": [sid(1)]},
        {"action": "control.noop", "depends_on": [sid(2)]},
        {"action": "control.echo", "payload": {"value": "independent"}},
    )
    r = engine.run(plan, environment=ENV)
    assert r.status is PlanStatus.PARTIAL
    assert [s.status.value for s in r.step_results] == ["skipped", "not_run", "not_run", "succeeded"]
    skipped = r.step_results[0]
    assert skipped.error.severity.value == "warn"  # §4: tolerated by skip → warn
    assert r.error.step_id == sid(1)  # R-RESULT-PICK


def test_s5_5_no_step_succeeded_is_failure(engine):
    r = engine.run(make_plan({"action": "control.fail", "on_failure": "skip"}), environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert r.error is not None


def test_s1_2_retry_schedule_is_exact_and_has_no_jitter(engine, store):
    plan = make_plan({
        "action": "control.fail", "payload": {"fail_attempts": 4}, "on_failure": "retry",
        "retry_policy": {"max_attempts": 5, "initial_delay_ms": 5, "backoff_multiplier": 3, "max_delay_ms": 100},
    })
    r = engine.run(plan, environment=ENV)
    assert r.status is PlanStatus.SUCCESS
    assert r.step_results[0].attempts == 5
    delays = [rec["data"]["delay_ms"] for rec in journal_records(store, r.execution_id)
              if rec["kind"] == "step.retry_scheduled"]
    assert delays == [5, 15, 45, 100]  # min(5·3^(n−2), 100)


def test_s5_2_retry_exhausted_halts(engine):
    plan = make_plan({"action": "control.fail", "on_failure": "retry",
                      "retry_policy": {"max_attempts": 2, "initial_delay_ms": 0}})
    r = engine.run(plan, environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert r.step_results[0].attempts == 2
    assert r.error.error_code is ErrorCode.STEP_FAILED


def test_s5_2_non_recoverable_error_is_not_retried(engine):
    plan = make_plan({"action": "control.fail", "payload": {"recoverable": False}, "on_failure": "retry",
                      "retry_policy": {"max_attempts": 5, "initial_delay_ms": 0}})
    r = engine.run(plan, environment=ENV)
    assert r.step_results[0].attempts == 1
    assert r.error.recoverable is False


def test_s5_2_retry_on_excludes_code(engine):
    plan = make_plan({"action": "control.fail", "on_failure": "retry",
                      "retry_policy": {"max_attempts": 5, "initial_delay_ms": 0, "retry_on": ["STEP_TIMEOUT"]}})
    r = engine.run(plan, environment=ENV)
    assert r.step_results[0].attempts == 1


def test_s5_2_retry_that_cannot_start_before_deadline_is_not_waited_for(engine):
    plan = make_plan({"action": "control.fail", "on_failure": "retry", "timeout_ms": 1000,
                      "retry_policy": {"max_attempts": 3, "initial_delay_ms": 60_000, "max_delay_ms": 60_000}},
                     timeout_ms=2000)
    r = engine.run(plan, environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert r.step_results[0].attempts == 1
    assert r.duration_ms < 1500


def test_s1_3_bindings_write_dependency_output_into_payload(engine):
    plan = make_plan(
        {"action": "control.echo", "payload": {"value": {"version": "2.4.1", "tags": ["a", "b"]}}},
        {"action": "control.echo", "depends_on": [sid(1)], "payload": {"value": {"static": True}},
         "inputs": {"/value/release/version": {"step": sid(1), "pointer": "/value/version"},
                    "/value/first_tag": {"step": sid(1), "pointer": "/value/tags/0"}}},
    )
    r = engine.run(plan, environment=ENV)
    assert r.status is PlanStatus.SUCCESS
    assert r.step_results[1].output == {"value": {"static": True, "release": {"version": "2.4.1"}, "first_tag": "a"}}


def test_s1_3_unresolvable_pointer_fails_step_with_invalid_payload(engine):
    plan = make_plan(
        {"action": "control.echo", "payload": {"value": {}}},
        {"action": "control.echo", "depends_on": [sid(1)], "payload": {},
         "inputs": {"/value": {"step": sid(1), "pointer": "/value/missing"}}},
    )
    r = engine.run(plan, environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert r.step_results[1].error.error_code is ErrorCode.INVALID_PAYLOAD
    assert "missing" in r.step_results[1].error.message


def test_s1_3_pointer_crossing_a_scalar_is_an_error(engine):
    plan = make_plan(
        {"action": "control.echo", "payload": {"value": 1}},
        {"action": "control.echo", "depends_on": [sid(1)], "payload": {"value": "scalar"},
         "inputs": {"/value/deeper": {"step": sid(1), "pointer": "/value"}}},
    )
    r = engine.run(plan, environment=ENV)
    assert r.step_results[1].error.error_code is ErrorCode.INVALID_PAYLOAD


def test_s5_1_max_parallel_is_respected_and_order_is_plan_order(engine, store):
    steps = [{"action": "control.sleep", "payload": {"ms": 30}} for _ in range(6)]
    r = engine.run(make_plan(*steps, max_parallel=2), environment=ENV)
    assert r.status is PlanStatus.SUCCESS
    starts = [rec for rec in journal_records(store, r.execution_id) if rec["kind"] == "step.attempt_started"]
    assert [rec["step_id"] for rec in starts] == [sid(i) for i in range(1, 7)]
    # at most 2 in flight at any time
    events = sorted([(s.started_at, 1) for s in r.step_results] + [(s.completed_at, -1) for s in r.step_results],
                    key=lambda e: (e[0], e[1]))
    live = peak = 0
    for _, d in events:
        live += d
        peak = max(peak, live)
    assert peak <= 2


def test_R_DETERMINISM_same_outcomes_same_statuses_and_journal_kinds(store, workspace):
    from ordinance.engine import Engine

    plan = make_plan(
        {"action": "control.echo", "payload": {"value": 1}},
        {"action": "control.fail", "on_failure": "skip", "depends_on": [sid(1)]},
        {"action": "control.noop", "depends_on": [sid(2)]},
        {"action": "control.fail", "payload": {"fail_attempts": 1}, "on_failure": "retry",
         "retry_policy": {"initial_delay_ms": 0}, "depends_on": [sid(1)]},
    )
    runs = []
    for _ in range(3):
        r = Engine(store, workspace=str(workspace)).run(plan, environment=ENV)
        runs.append(([s.status.value for s in r.step_results], [k for k in journal_kinds(store, r.execution_id)],
                     r.plan_digest))
    assert runs[0] == runs[1] == runs[2]


def test_s0_4_run_id_is_derived_from_plan_digest_and_execution_id(engine):
    from ordinance.contract import digest

    eid = str(uuid.uuid4())
    ctx = {"execution_id": eid, "plan_id": PLAN_ID, "started_at": 1_700_000_000_000,
           "deadline_ms": 4_000_000_000_000, "environment": ENV}
    plan = make_plan({"action": "control.noop"})
    r = engine.run(plan, ctx)
    assert r.plan_digest == digest(plan)
    assert r.run_id == digest({"plan": r.plan_digest, "execution_id": eid})


def test_s5_6_R_EXEC_ID_ONCE_same_plan_returns_stored_result_and_runs_nothing(engine, store):
    eid = str(uuid.uuid4())
    import time

    now = int(time.time() * 1000)
    ctx = {"execution_id": eid, "plan_id": PLAN_ID, "started_at": now, "deadline_ms": now + 3_600_000,
           "environment": ENV}
    plan = make_plan({"action": "control.echo", "payload": {"value": 7}})
    first = engine.run(plan, ctx)
    n = store.journal_size()
    again = engine.run(plan, ctx)
    assert again == first
    assert store.journal_size() == n  # nothing ran, nothing was journaled


def test_s5_6_R_EXEC_ID_ONCE_other_plan_is_context_invalid(engine, store):
    import time

    eid = str(uuid.uuid4())
    now = int(time.time() * 1000)
    ctx = {"execution_id": eid, "plan_id": PLAN_ID, "started_at": now, "deadline_ms": now + 3_600_000,
           "environment": ENV}
    engine.run(make_plan({"action": "control.noop"}), ctx)
    other = engine.run(make_plan({"action": "control.echo", "payload": {"value": 1}}), ctx)
    assert other.status is PlanStatus.FAILURE
    assert other.error.error_code is ErrorCode.CONTEXT_INVALID
    assert store.get_result(eid)["status"] == "success"  # the stored execution is untouched


def test_s3_partial_and_failure_are_terminal_R_NO_RESUME(engine, store):
    r = engine.run(make_plan({"action": "control.fail"}), environment=ENV)
    row = store.get_execution(r.execution_id)
    assert row.status == "failure" and row.lease_owner is None
    # recovery has nothing to do with a terminal execution
    assert engine.recover() == []


def test_s3_step_results_in_plan_order_with_timing(engine):
    plan = make_plan({"action": "control.sleep", "payload": {"ms": 20}}, {"action": "control.noop"})
    r = engine.run(plan, environment=ENV)
    assert [s.step_id for s in r.step_results] == [sid(1), sid(2)]
    slow = r.step_results[0]
    assert slow.duration_ms >= 15 and slow.completed_at - slow.started_at == slow.duration_ms


def test_s7_1_every_attempt_that_reaches_an_action_has_a_receipt(engine, store):
    plan = make_plan({"action": "control.fail", "payload": {"fail_attempts": 2}, "on_failure": "retry",
                      "retry_policy": {"initial_delay_ms": 0}})
    r = engine.run(plan, environment=ENV)
    receipts = store.receipts(r.execution_id)
    assert sorted(x["attempt"] for x in receipts) == [1, 2, 3]
    assert [x["status"] for x in sorted(receipts, key=lambda x: x["attempt"])] == ["failed", "failed", "succeeded"]
    rec = r.step_results[0].receipt
    for field in ("operation_id", "execution_id", "step_id", "attempt", "timestamp", "action", "idempotency_key",
                  "pre_state_hash", "post_state_hash", "compensation_type", "compensation_command",
                  "compensation_verified"):
        assert hasattr(rec, field)


def test_s7_2_idempotent_action_with_succeeded_receipt_is_replayed(store, workspace):
    from pydantic import BaseModel

    from ordinance.actions import default_registry
    from ordinance.engine import Engine

    calls = []

    class In(BaseModel):
        n: int

    reg = default_registry.copy()

    @reg.action("test.charge", input=In, idempotent=True)
    async def charge(payload: In, ctx) -> dict:
        calls.append(payload.n)
        return {"charged": payload.n}

    plan = make_plan({"action": "test.charge", "payload": {"n": 5}})
    e = Engine(store, registry=reg, workspace=str(workspace))
    first = e.run(plan, environment=ENV)
    second = Engine(store, registry=reg, workspace=str(workspace)).run(plan, environment=ENV)
    assert calls == [5]
    assert second.status is PlanStatus.SUCCESS
    assert second.step_results[0].output == {"charged": 5}
    assert second.step_results[0].receipt.status == "replayed"
    assert second.step_results[0].receipt.idempotency_key == first.step_results[0].receipt.idempotency_key


def test_s5_3_non_json_output_fails_the_step(store, workspace):
    from ordinance.actions import default_registry
    from ordinance.engine import Engine

    reg = default_registry.copy()

    @reg.action("test.nan")
    async def nan(payload, ctx):
        return {"x": float("nan")}

    r = Engine(store, registry=reg, workspace=str(workspace)).run(make_plan({"action": "test.nan"}), environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert r.error.error_code is ErrorCode.STEP_FAILED


def test_an_action_raising_any_exception_is_step_failed_not_a_traceback(store, workspace):
    from ordinance.actions import default_registry
    from ordinance.engine import Engine

    reg = default_registry.copy()

    @reg.action("test.crash")
    async def crash(payload, ctx):
        raise ZeroDivisionError("division by zero")

    r = Engine(store, registry=reg, workspace=str(workspace)).run(make_plan({"action": "test.crash"}), environment=ENV)
    assert r.error.error_code is ErrorCode.STEP_FAILED
    assert "ZeroDivisionError" in r.error.message
