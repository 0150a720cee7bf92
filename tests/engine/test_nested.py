"""Nested plans (CONTRACT §5.4): only execute_plan runs another plan."""

from __future__ import annotations

import uuid

from ordinance.contract import ErrorCode, PlanStatus
from support import ENV, make_plan, sid


def child(*steps, **kw):
    kw.setdefault("id", str(uuid.uuid4()))
    kw.setdefault("context_requirements", ["REGION"])
    return make_plan(*steps, **kw)


def test_s5_4_child_result_is_the_step_output_and_links_to_parent(engine, store):
    c = child({"action": "control.echo", "payload": {"value": "from child"}})
    r = engine.run(make_plan({"action": "execute_plan", "payload": {"plan": c, "environment": {"REGION": "eu"}}}),
                   environment=ENV)
    assert r.status is PlanStatus.SUCCESS
    out = r.step_results[0].output
    assert out["status"] == "success" and out["plan_id"] == c["id"]
    assert out["step_results"][0]["output"] == {"value": "from child"}
    row = store.get_execution(out["execution_id"])
    assert row.parent_execution_id == r.execution_id and row.parent_step_id == sid(1)
    assert row.context["trigger_type"] == "nested"
    assert out["execution_id"] != r.execution_id


def test_s5_4_child_failure_fails_the_step(engine):
    c = child({"action": "control.fail"})
    r = engine.run(make_plan({"action": "execute_plan", "payload": {"plan": c, "environment": {"REGION": "eu"}}}),
                   environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert r.error.error_code is ErrorCode.STEP_FAILED
    assert r.error.details["child_status"] == "failure"


def test_s5_4_child_partial_needs_accept_partial(engine):
    c = child({"action": "control.noop"}, {"action": "control.fail", "on_failure": "skip"})
    plan = make_plan({"action": "execute_plan", "payload": {"plan": c, "environment": {"REGION": "eu"}}})
    assert engine.run(plan, environment=ENV).status is PlanStatus.FAILURE
    plan2 = make_plan({"action": "execute_plan",
                       "payload": {"plan": c, "environment": {"REGION": "eu"}, "accept_partial": True}},
                      id=str(uuid.uuid4()))
    assert engine.run(plan2, environment=ENV).status is PlanStatus.SUCCESS


def test_s5_4_child_environment_must_satisfy_child_requirements(engine):
    c = child({"action": "control.noop"})
    r = engine.run(make_plan({"action": "execute_plan", "payload": {"plan": c, "environment": {}}}), environment=ENV)
    assert r.error.details["child_error_code"] == "CONTEXT_MISSING"


def test_s5_4_plan_ref_from_registry(engine):
    c = child({"action": "control.echo", "payload": {"value": 3}})
    first = engine.run(make_plan({"action": "execute_plan", "payload": {"plan": c, "environment": {"REGION": "x"}}}),
                       environment=ENV)
    assert first.status is PlanStatus.SUCCESS
    r = engine.run(make_plan({"action": "execute_plan",
                              "payload": {"plan_ref": {"id": c["id"], "version": 1}, "environment": {"REGION": "x"}}},
                             id=str(uuid.uuid4())), environment=ENV)
    assert r.status is PlanStatus.SUCCESS


def test_s5_4_nesting_deeper_than_8_is_policy_denied(engine):
    inner = child({"action": "control.noop"})
    for _ in range(9):
        inner = child({"action": "execute_plan", "payload": {"plan": inner, "environment": {"REGION": "x"}}})
    r = engine.run(make_plan({"action": "execute_plan", "payload": {"plan": inner, "environment": {"REGION": "x"}}}),
                   environment=ENV)
    assert r.status is PlanStatus.FAILURE
    # walk down to the deepest failure
    details = r.error.details
    codes = []
    while details and "child_result" in details:
        err = details["child_result"]["error"]
        codes.append(err["error_code"])
        details = err.get("details")
    assert codes[-1] == "POLICY_DENIED"


def test_s5_4_child_deadline_is_capped_by_parent(engine):
    c = child({"action": "control.sleep", "payload": {"ms": 60_000}}, timeout_ms=60_000)
    plan = make_plan({"action": "execute_plan", "payload": {"plan": c, "environment": {"REGION": "x"}}, "timeout_ms": 1000},
                     timeout_ms=1000)
    r = engine.run(plan, environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert r.duration_ms < 10_000
