"""§1.4 property tests: validation never raises on any input, and its output is sorted and deterministic."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract_strategies import mutated_contexts, mutated_plans, wild_objects, wild_values
from plan_builders import valid_legacy, valid_plan
from ordinance.contract.canonical import digest
from ordinance.contract.legacy import convert_legacy, validate_legacy
from ordinance.contract.models import Plan
from ordinance.contract.validate import (
    ContextInvalid, PlanInvalid, Violation, parse_context, parse_plan, validate_context, validate_plan,
)

#: CONTRACT_EXAMPLES=3000 runs a deeper search (about a minute).
FAST = settings(max_examples=int(os.environ.get("CONTRACT_EXAMPLES", 250)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _well_formed(violations) -> bool:
    return (isinstance(violations, list) and all(isinstance(v, Violation) for v in violations)
            and violations == sorted(violations)
            and (not any(v.rule == "R-JSON" for v in violations) or len(violations) == 1))


def _plan_outcome(data):
    """parse_plan either builds a Plan whose digest is the document's, or raises PlanInvalid; nothing else."""
    try:
        plan = parse_plan(data)
    except PlanInvalid as exc:
        assert exc.violations
        return None
    assert isinstance(plan, Plan)
    return plan


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_R_VALIDATE(data):
    assert _well_formed(validate_plan(data))
    assert _well_formed(validate_context(data, valid_plan()))
    assert _well_formed(validate_context(valid_plan(), data))
    assert _well_formed(validate_legacy(data))
    _plan_outcome(data)


@FAST
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises_R_VALIDATE(text):
    assert _well_formed(validate_plan(text))
    assert _well_formed(validate_legacy(text))


@FAST
@given(st.one_of(wild_values, wild_objects))
def test_arbitrary_json_values_never_raise_R_VALIDATE(value):
    """Parsed values (NaN, lone surrogates, huge ints included) and their JSON text: violations, never raises."""
    for data in (value, json.dumps(value), json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")):
        assert _well_formed(validate_plan(data))
        assert _well_formed(validate_legacy(data))
        assert _well_formed(validate_context(data, valid_plan()))
        _plan_outcome(data)


@FAST
@given(mutated_plans(values=wild_values))
def test_mutated_plans_never_raise_and_are_deterministic_R_VALIDATE_DET(doc):
    first = validate_plan(doc)
    assert _well_formed(first)
    assert validate_plan(doc) == first
    try:
        text = json.dumps(doc, allow_nan=False)
    except (ValueError, RecursionError):
        return
    if json.loads(text) != doc:  # e.g. a Python str holding a surrogate *pair* becomes one astral character
        return
    assert validate_plan(text.encode()) == first  # bytes and parsed document agree
    plan = _plan_outcome(doc)
    if plan is not None:
        assert first == [] and digest(plan.to_document()) == digest(doc)
    else:
        assert first


@FAST
@given(mutated_contexts(), st.sampled_from([valid_plan(), None, {"id": 1}]))
def test_mutated_contexts_never_raise_R_VALIDATE(doc, plan):
    violations = validate_context(doc, plan)
    assert _well_formed(violations) and validate_context(doc, plan) == violations
    try:
        parse_context(doc, plan)
    except ContextInvalid as exc:
        assert exc.violations == tuple(violations)
    else:
        assert violations == []


@FAST
@given(mutated_plans(values=wild_values, base=valid_legacy))
def test_mutated_legacy_never_raises(doc):
    violations = validate_legacy(doc)
    assert _well_formed(violations)
    if not violations:
        assert _well_formed(validate_plan(convert_legacy(doc)))
