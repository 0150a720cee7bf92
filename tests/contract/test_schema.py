"""JSON Schema export (Draft 2020-12): well-formed, self-contained, and in agreement with the validator
on every structural rule (docs/rules.md lists the validator-only ones)."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator

from plan_builders import valid_context, valid_plan
from rule_cases import CASES, VALID_CASES, Case
from contract_strategies import mutated_plans
from schema_agreement import CONTEXT_VALIDATOR, PLAN_VALIDATOR, is_cross_field, schema_errors
from ordinance.contract.models import ExecutionError, PlanResult, StepResult
from ordinance.contract.errors import ErrorCode
from ordinance.contract.rules import RULES
from ordinance.contract.schema import DRAFT_2020_12, SCHEMAS, plan_schema, result_schema
from ordinance.contract.validate import validate_context, validate_plan


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_schema_is_valid_draft_2020_12_and_self_contained(kind):
    schema = SCHEMAS[kind]()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT_2020_12 and schema["$id"].endswith(kind) and schema["title"]
    assert schema["description"] and schema["type"] == "object" and schema["additionalProperties"] is False
    for ref in _refs(schema):
        assert ref.startswith("#/$defs/"), ref
        assert ref.split("/")[-1] in schema["$defs"]
    json.dumps(schema)  # plain JSON


def test_schema_functions_return_fresh_copies():
    a = plan_schema()
    a["title"] = "changed"
    assert plan_schema()["title"] != "changed"


def test_plan_schema_required_and_bounds_R_1():
    schema = plan_schema()
    assert schema["required"] == ["id", "version", "name", "created_at", "steps", "context_requirements"]
    assert schema["properties"]["version"]["maximum"] == 2**53 - 1
    assert schema["properties"]["steps"]["maxItems"] == 1024
    step = schema["$defs"]["step"]
    assert step["additionalProperties"] is False and step["required"] == ["id", "action"]
    assert step["then"]["properties"]["on_failure"] == {"const": "retry"}


# --- agreement on the curated corpus -------------------------------------------------------------


@pytest.mark.parametrize("case", VALID_CASES, ids=[c.name for c in VALID_CASES])
def test_schema_accepts_every_valid_document(case: Case):
    assert schema_errors(PLAN_VALIDATOR, case.doc()) == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_schema_agrees_on_every_structural_rule(case: Case):
    """Structural cases: the schema rejects them too. Validator-only cases: the schema accepts them."""
    doc = case.doc()
    violations = validate_plan(doc)
    assert violations
    errors = schema_errors(PLAN_VALIDATOR, doc)
    assert all(is_cross_field(v) for v in violations) is (not case.structural)
    assert bool(errors) is case.structural, errors


def test_corpus_breaks_every_schema_expressible_plan_rule():
    structural = {rule for case in CASES if case.structural for rule in case.rules}
    expressible = {r.id for r in RULES.values() if "plan" in r.documents and r.schema != "none"} - {"R-JSON"}
    assert structural == expressible


def test_context_schema_agreement():
    assert schema_errors(CONTEXT_VALIDATOR, valid_context()) == []
    for change, structural in [({"trigger_type": "cron"}, True), ({"principal": {"user_id": "a"}}, True),
                               ({"started_at": True}, True), ({"x": 1}, True), ({"environment": []}, True),
                               ({"plan_id": "ffffffff-0000-4000-8000-000000000000"}, False),
                               ({"deadline_ms": 1_700_000_000_001}, False), ({"environment": {}}, False)]:
        doc = {**valid_context(), **change}
        violations = validate_context(doc, valid_plan())
        assert violations and all(is_cross_field(v) for v in violations) is (not structural)
        assert bool(schema_errors(CONTEXT_VALIDATOR, doc)) is structural, change


# --- agreement on generated mutations --------------------------------------------------------------


@settings(max_examples=int(os.environ.get("CONTRACT_EXAMPLES", 300)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated_plans())
def test_schema_valid_iff_only_cross_field_violations(doc):
    """For structurally mutated plans: the schema accepts ⇔ every validator violation is validator-only."""
    try:
        json.dumps(doc, allow_nan=False)
    except (ValueError, RecursionError):
        return
    violations = validate_plan(doc)
    errors = schema_errors(PLAN_VALIDATOR, doc)
    assert (not errors) == all(is_cross_field(v) for v in violations), (errors, [str(v) for v in violations])


# --- the two documented divergences of JSON Schema itself ----------------------------------------------


def test_divergence_integral_float_is_an_integer_in_json_schema():
    """JSON Schema's data model counts 2.0 as an integer; the contract does not (validator-only)."""
    doc = valid_plan()
    doc["version"] = 2.0
    assert [v.rule for v in validate_plan(doc)] == ["R-PLAN-VERSION"]
    assert schema_errors(PLAN_VALIDATOR, doc) == []


def test_divergence_trailing_newline_and_python_dollar():
    """python-jsonschema runs `pattern` with Python's re, whose `$` also matches before a final newline;
    under ECMA-262 (what JSON Schema prescribes) the exported patterns reject it, as the validator does."""
    import re

    from jsonschema import validators

    doc = valid_plan()
    doc["steps"][0]["action"] = "control.echo\n"
    assert [v.rule for v in validate_plan(doc)] == ["R-STEP-ACTION"]
    assert schema_errors(PLAN_VALIDATOR, doc) == []  # the python-jsonschema quirk

    def ecma_pattern(validator, pattern, instance, schema):
        if validator.is_type(instance, "string") and not re.search(pattern.replace("$", r"(?![\s\S])"), instance):
            yield __import__("jsonschema").ValidationError(f"{instance!r} does not match {pattern!r}")

    Ecma = validators.extend(Draft202012Validator, {"pattern": ecma_pattern})
    assert list(Ecma(plan_schema()).iter_errors(doc))
    assert not list(Ecma(plan_schema()).iter_errors(valid_plan()))


# --- result schema ----------------------------------------------------------------------------


def _result(status: str, error: ExecutionError | None) -> dict:
    step = StepResult(step_id="s", status="succeeded", attempts=1, started_at=1, completed_at=2, duration_ms=1,
                      output={"v": 1})
    return PlanResult(plan_id="p", plan_version=1, execution_id="e", status=status, started_at=1, completed_at=3,
                      duration_ms=2, steps_total=1, steps_executed=1, step_results=(step,), plan_digest="sha256:x",
                      run_id="sha256:y", error=error).to_document()


def test_result_schema_accepts_engine_results_and_R_RESULT_ERROR():
    validator = Draft202012Validator(result_schema())
    err = ExecutionError.of(ErrorCode.STEP_FAILED, "boom", occurred_at=2, step_id="s")
    assert schema_errors(validator, _result("success", None)) == []
    assert schema_errors(validator, _result("failure", err)) == []
    assert schema_errors(validator, _result("success", err))  # R-RESULT-ERROR: success carries no error
    assert schema_errors(validator, _result("partial", None))  # partial/failure carry one
    bad = _result("success", None)
    bad["surprise"] = 1
    assert schema_errors(validator, bad)
    del bad["surprise"], bad["run_id"]
    assert schema_errors(validator, bad)
