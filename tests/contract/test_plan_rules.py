"""§1, §1.1–§1.4: every plan rule, each with failing documents asserting the exact rule id and path."""

from __future__ import annotations

import json

import pytest

from plan_builders import PLAN_ID, S0, S1, S2, S3, chain_plan, minimal_plan, pairs, uid, valid_plan
from rule_cases import CASES, VALID_CASES, Case
from ordinance.contract.rules import PLAN_RULES
from ordinance.contract.validate import Violation, validate_plan


def test_valid_plan_has_no_violations_R_VALIDATE():
    assert validate_plan(valid_plan()) == []
    assert validate_plan(minimal_plan()) == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_failing_document_reports_exact_rule_and_path(case: Case):
    """Each case breaks one rule: the validator returns exactly that (path, rule) list (§1.4)."""
    violations = validate_plan(case.doc())
    assert pairs(violations) == list(case.expected), [str(v) for v in violations]
    assert all(v.message for v in violations)


@pytest.mark.parametrize("case", VALID_CASES, ids=[c.name for c in VALID_CASES])
def test_unusual_but_valid_documents_pass(case: Case):
    assert validate_plan(case.doc()) == []


def test_every_plan_rule_has_a_failing_case():
    """Coverage of the corpus: every §1 rule id except R-JSON (tested in test_jsonio) is broken at least once."""
    covered = set().union(*(c.rules for c in CASES))
    assert covered == set(PLAN_RULES) - {"R-JSON"}


def test_missing_required_field_is_that_fields_rule_R_PLAN_ID():
    """§1.4: a missing plan id is R-PLAN-ID at /id."""
    doc = valid_plan()
    del doc["id"]
    assert validate_plan(doc) == [Violation("/id", "R-PLAN-ID", 'required field "id" is missing')]


def test_empty_object_reports_every_required_field_R_1_4():
    assert pairs(validate_plan({})) == [
        ("/context_requirements", "R-PLAN-REQS"), ("/created_at", "R-PLAN-CREATED"), ("/id", "R-PLAN-ID"),
        ("/name", "R-PLAN-NAME"), ("/steps", "R-PLAN-STEPS"), ("/version", "R-PLAN-VERSION"),
    ]


@pytest.mark.parametrize("value", [True, False, 1.0, 3.0, "1", None, [1], {"v": 1}])
def test_boolean_float_and_string_are_never_integers(value):
    """Contract words: a JSON integer field never accepts a boolean, a float (3.0 included) or a string."""
    doc = valid_plan()
    doc["version"] = value
    assert pairs(validate_plan(doc)) == [("/version", "R-PLAN-VERSION")]


def test_integer_float_from_raw_json_is_not_an_integer():
    raw = json.dumps(valid_plan()).replace('"version": 2', '"version": 2.0').encode()
    assert pairs(validate_plan(raw)) == [("/version", "R-PLAN-VERSION")]


def test_all_violations_reported_sorted_by_path_then_rule_R_VALIDATE_DET():
    doc = valid_plan()
    doc["name"] = ""
    doc["steps"][3]["id"] = "bad"
    doc["steps"][1]["timeout_ms"] = 0
    doc["steps"][0]["action"] = "X"
    doc["zzz"] = 1
    doc["aaa"] = 1
    violations = validate_plan(doc)
    assert pairs(violations) == [
        ("/aaa", "R-NO-EXTRA"), ("/name", "R-PLAN-NAME"), ("/steps/0/action", "R-STEP-ACTION"),
        ("/steps/1/timeout_ms", "R-STEP-TIMEOUT"), ("/steps/3/id", "R-STEP-ID"), ("/zzz", "R-NO-EXTRA"),
    ]
    assert violations == sorted(violations, key=lambda v: (v.path, v.rule, v.message))


def test_same_path_two_rules_sorted_by_rule_R_VALIDATE_DET():
    doc = valid_plan()
    doc["steps"][3]["retry_policy"] = "x"  # not allowed (halt) and not an object: one rule, two messages
    doc["steps"][3]["depends_on"] = [S3]
    out = validate_plan(doc)
    assert pairs(out) == [("/steps/3/depends_on/0", "R-STEP-DEPS"),
                          ("/steps/3/retry_policy", "R-STEP-RETRY"), ("/steps/3/retry_policy", "R-STEP-RETRY")]
    assert out == sorted(out)


def test_determinism_same_input_same_list_R_VALIDATE_DET():
    doc = valid_plan()
    doc["steps"][0]["depends_on"] = [S3, S1]
    doc["steps"][2]["inputs"]["/x"] = {"step": S3, "pointer": "y"}
    doc["extra"] = {"a": 1}
    runs = [validate_plan(json.loads(json.dumps(doc))) for _ in range(5)]
    assert all(r == runs[0] for r in runs)
    assert runs[0] == validate_plan(json.dumps(doc).encode())


def test_violation_to_dict_and_frozen_R_1_4():
    v = Violation("/id", "R-PLAN-ID", "m")
    assert v.to_dict() == {"path": "/id", "rule": "R-PLAN-ID", "message": "m"}
    with pytest.raises(AttributeError):
        v.path = "/x"  # type: ignore[misc]


# --- R-PLAN-ACYCLIC -----------------------------------------------------------------------------


def test_cycle_message_names_one_cycle_in_order_R_PLAN_ACYCLIC():
    """a → b means "a depends on b"; the cycle starts at its first step in plan order."""
    doc = valid_plan()
    doc["steps"][0]["depends_on"] = [S3]  # S0 → S3 → S2 → S1 → S0
    (v,) = validate_plan(doc)
    assert v.path == "/steps/0/depends_on" and v.rule == "R-PLAN-ACYCLIC"
    assert v.message == f"dependency cycle: {S0} → {S3} → {S2} → {S1} → {S0}"


def test_cycle_not_including_the_first_step_R_PLAN_ACYCLIC():
    doc = valid_plan()
    doc["steps"][1]["depends_on"] = [S0, S3]  # S1 → S3 → S2 → S1; S0 is outside the cycle
    (v,) = validate_plan(doc)
    assert (v.path, v.rule) == ("/steps/1/depends_on", "R-PLAN-ACYCLIC")
    assert v.message == f"dependency cycle: {S1} → {S3} → {S2} → {S1}"


def test_two_cycles_report_one_R_PLAN_ACYCLIC():
    ids = [uid(i) for i in range(1, 5)]
    doc = minimal_plan()
    doc["steps"] = [
        {"id": ids[0], "action": "a", "depends_on": [ids[1]]}, {"id": ids[1], "action": "a", "depends_on": [ids[0]]},
        {"id": ids[2], "action": "a", "depends_on": [ids[3]]}, {"id": ids[3], "action": "a", "depends_on": [ids[2]]},
    ]
    assert pairs(validate_plan(doc)) == [("/steps/0/depends_on", "R-PLAN-ACYCLIC")]


def test_self_dependency_is_R_STEP_DEPS_not_a_cycle():
    doc = minimal_plan()
    doc["steps"][0]["depends_on"] = [S0]
    assert pairs(validate_plan(doc)) == [("/steps/0/depends_on/0", "R-STEP-DEPS")]


def test_1024_deep_chain_and_cycle_do_not_recurse_R_PLAN_ACYCLIC():
    """Iterative graph algorithms: a 1024-deep chain validates; closing it into a cycle is reported."""
    doc = chain_plan(1024)
    assert validate_plan(doc) == []
    doc["steps"][0]["depends_on"] = [doc["steps"][-1]["id"]]
    (v,) = validate_plan(doc)
    assert v.rule == "R-PLAN-ACYCLIC" and v.path == "/steps/0/depends_on"
    assert v.message.count("→") == 1024


def test_long_backward_cycle_with_bindings_terminates_R_BIND_REF():
    """Dependencies pointing forward around a 1024-cycle: reachability still converges; no R-BIND-REF."""
    n = 1024
    ids = [uid(i + 1) for i in range(n)]
    doc = minimal_plan()
    doc["steps"] = [{"id": ids[i], "action": "a", "depends_on": [ids[(i + 1) % n]],
                     "inputs": {"/x": {"step": ids[(i + n // 2) % n], "pointer": ""}}} for i in range(n)]
    assert pairs(validate_plan(doc)) == [("/steps/0/depends_on", "R-PLAN-ACYCLIC")]


# --- R-BIND-REF / R-STEP-INPUTS -------------------------------------------------------------------


def test_binding_from_transitive_dependency_is_fine_R_BIND_REF():
    doc = chain_plan(50)  # every step binds from the first step, a transitive dependency
    assert validate_plan(doc) == []


def test_binding_from_step_downstream_of_a_cycle_R_BIND_REF():
    doc = valid_plan()
    doc["steps"][0]["depends_on"] = [S1]  # cycle S0 ↔ S1; S2 → S1 is downstream
    doc["steps"][2]["inputs"] = {"/a": {"step": S0, "pointer": ""}, "/b": {"step": S3, "pointer": ""}}
    assert pairs(validate_plan(doc)) == [("/steps/0/depends_on", "R-PLAN-ACYCLIC"),
                                         ("/steps/2/inputs/~1b/step", "R-BIND-REF")]


def test_binding_to_duplicate_step_id_uses_the_first_R_STEP_UNIQUE():
    doc = valid_plan()
    doc["steps"][3]["id"] = S0
    assert pairs(validate_plan(doc)) == [("/steps/3/id", "R-STEP-UNIQUE")]


def test_plan_id_may_not_be_confused_with_step_ids():
    doc = valid_plan()
    doc["steps"][3]["depends_on"] = [PLAN_ID]
    assert pairs(validate_plan(doc)) == [("/steps/3/depends_on/0", "R-STEP-DEPS")]


def test_dependency_on_malformed_step_id_is_reported_R_STEP_DEPS():
    doc = valid_plan()
    doc["steps"][0]["id"] = "not-a-uuid"
    doc["steps"][1]["depends_on"] = ["not-a-uuid"]
    doc["steps"][1]["inputs"] = {}
    doc["steps"][2]["inputs"] = {}
    doc["steps"][3]["depends_on"] = [S2]
    assert pairs(validate_plan(doc)) == [("/steps/0/id", "R-STEP-ID"), ("/steps/1/depends_on/0", "R-STEP-DEPS")]


# --- several findings in one document -------------------------------------------------------------


def test_unknown_step_field_and_wrong_types_all_reported_R_NO_EXTRA():
    doc = valid_plan()
    doc["steps"][1].update({"retry": 3, "timeout_ms": 1.0, "on_failure": "retry"})
    doc["steps"][2]["payload"] = None
    assert pairs(validate_plan(doc)) == [
        ("/steps/1/retry", "R-NO-EXTRA"), ("/steps/1/timeout_ms", "R-STEP-TIMEOUT"), ("/steps/2/payload", "R-STEP-PAYLOAD"),
    ]


def test_null_optional_fields_are_wrong_types():
    """Decision: an optional field given as null is a wrong type (types are exact), not "absent"."""
    doc = valid_plan()
    for key in ("payload", "depends_on", "on_failure", "retry_policy", "timeout_ms", "inputs", "compensation", "name"):
        doc["steps"][1][key] = None
    assert pairs(validate_plan(doc)) == [
        ("/steps/1/compensation", "R-STEP-COMP"), ("/steps/1/depends_on", "R-STEP-DEPS"), ("/steps/1/inputs", "R-STEP-INPUTS"),
        ("/steps/1/name", "R-STEP-NAME"), ("/steps/1/on_failure", "R-STEP-ONFAIL"), ("/steps/1/payload", "R-STEP-PAYLOAD"),
        ("/steps/1/retry_policy", "R-STEP-RETRY"), ("/steps/1/timeout_ms", "R-STEP-TIMEOUT"),
        # with step 1's depends_on unusable, S0 is no longer a transitive dependency of step 2
        ("/steps/2/inputs/~1content/step", "R-BIND-REF"),
    ]


def test_invalid_plan_timeout_does_not_cascade_to_step_timeouts_R_PLAN_TIMEOUT():
    doc = valid_plan()
    doc["timeout_ms"] = "slow"
    doc["steps"][1]["timeout_ms"] = 86_400_000
    assert pairs(validate_plan(doc)) == [("/timeout_ms", "R-PLAN-TIMEOUT")]


def test_step_default_timeout_vs_small_plan_timeout_is_fine_R_STEP_TIMEOUT():
    """A step without timeout_ms defaults to min(30 000, plan timeout): never a violation."""
    doc = minimal_plan()
    doc["timeout_ms"] = 5
    assert validate_plan(doc) == []


def test_bytes_str_and_dict_inputs_agree():
    doc = valid_plan()
    doc["steps"][2]["on_failure"] = "sometimes"
    text = json.dumps(doc, ensure_ascii=False)
    assert validate_plan(doc) == validate_plan(text) == validate_plan(text.encode()) == validate_plan(bytearray(text.encode()))
