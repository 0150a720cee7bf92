"""parse_plan / parse_context: strict read + validate + the frozen models; PlanInvalid carries violations."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from plan_builders import S0, S1, S2, chain_plan, minimal_plan, pairs, valid_plan
from ordinance.contract.canonical import digest, plan_digest
from ordinance.contract.errors import ErrorCode
from ordinance.contract.models import OnFailure, Plan, PlanStep, RetryPolicy
from ordinance.contract.validate import PlanInvalid, parse_plan


def test_parse_plan_builds_the_frozen_model():
    plan = parse_plan(valid_plan())
    assert isinstance(plan, Plan)
    step = plan.steps[1]
    assert isinstance(step, PlanStep) and step.on_failure is OnFailure.RETRY
    assert step.depends_on == (S0,)
    assert isinstance(step.retry_policy, RetryPolicy) and step.retry_policy.retry_on == ("STEP_FAILED",)
    assert step.inputs["/env/VERSION"].step == S0 and step.inputs["/env/VERSION"].pointer == "/value/version"
    assert plan.steps[2].compensation is not None and plan.steps[2].compensation.action == "fs.delete"
    with pytest.raises(ValidationError):
        plan.name = "changed"  # type: ignore[misc]


def test_plan_digest_of_model_equals_digest_of_document_R_0_3():
    """§0.3: parsing keeps exactly the given fields, so the model's digest is the document's."""
    for doc in (valid_plan(), minimal_plan(), chain_plan(30)):
        plan = parse_plan(json.dumps(doc).encode())
        assert plan.to_document() == doc
        assert plan_digest(plan) == digest(doc) == plan_digest(doc)


def test_defaults_are_not_materialised_in_the_document_but_available_on_the_model():
    plan = parse_plan(minimal_plan())
    assert "timeout_ms" not in plan.to_document()
    assert plan.timeout_ms == 3_600_000 and plan.max_parallel == 8 and plan.compensate_on_failure is True
    step = plan.steps[0]
    assert step.on_failure is OnFailure.HALT and step.payload == {} and step.depends_on == ()
    assert plan.step_timeout_ms(step) == 30_000


def test_integer_backoff_multiplier_keeps_its_form_R_0_1():
    doc = valid_plan()
    doc["steps"][1]["retry_policy"]["backoff_multiplier"] = 2
    assert digest(parse_plan(doc).to_document()) == digest(doc)


@pytest.mark.parametrize("data", [b"{", b"[]", {"id": "x"}, b'{"a": 1, "a": 2}'])
def test_parse_plan_raises_PlanInvalid_with_violations(data):
    with pytest.raises(PlanInvalid) as info:
        parse_plan(data)
    exc = info.value
    assert exc.code is ErrorCode.PLAN_INVALID
    assert exc.violations and exc.details()["violations"] == [v.to_dict() for v in exc.violations]
    assert str(exc).startswith("invalid plan: ")


def test_PlanInvalid_lists_every_violation():
    doc = valid_plan()
    doc["steps"][0]["depends_on"] = [S2]
    doc["steps"][1]["action"] = "BAD"
    with pytest.raises(PlanInvalid) as info:
        parse_plan(doc)
    assert pairs(list(info.value.violations)) == [("/steps/0/depends_on", "R-PLAN-ACYCLIC"),
                                                  ("/steps/1/action", "R-STEP-ACTION")]


def test_parse_plan_accepts_text_and_bytes():
    text = json.dumps(valid_plan(), ensure_ascii=False)
    assert parse_plan(text) == parse_plan(text.encode()) == parse_plan(valid_plan())


def test_parse_plan_of_1024_steps():
    plan = parse_plan(chain_plan(1024))
    assert len(plan.steps) == 1024 and plan.steps[-1].depends_on == (plan.steps[-2].id,)
    assert plan.step(S1).id == S1
