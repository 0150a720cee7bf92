"""§10 strict legacy dialect: R-LEGACY-* rules and deterministic conversion to a v1 plan."""

from __future__ import annotations

import copy
import json
import re

import pytest

from plan_builders import pairs, valid_legacy
from ordinance.contract.canonical import digest
from ordinance.contract.legacy import convert_legacy, legacy_uuid, validate_legacy
from ordinance.contract.rules import LEGACY_RULES
from ordinance.contract.validate import PlanInvalid, parse_plan, validate_plan

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _legacy(mutate):
    doc = valid_legacy()
    mutate(doc)
    return doc


def _set(path, value):
    def mutate(doc):
        *parents, last = path
        node = doc
        for p in parents:
            node = node[p]
        node[last] = value
    return mutate


def _del(path):
    def mutate(doc):
        *parents, last = path
        node = doc
        for p in parents:
            node = node[p]
        del node[last]
    return mutate


CASES = [
    ("extra top-level field", _set(["plan_id"], "x"), [("/plan_id", "R-LEGACY-EXTRA")]),
    ("extra step field", _set(["steps", 0, "timeout"], 5), [("/steps/0/timeout", "R-LEGACY-EXTRA")]),
    ("extra binding field", _set(["data_bindings", 0, "transform"], "upper"), [("/data_bindings/0/transform", "R-LEGACY-EXTRA")]),
    ("user_id missing", _del(["user_id"]), [("/user_id", "R-LEGACY-USER")]),
    ("user_id number", _set(["user_id"], 42), [("/user_id", "R-LEGACY-USER")]),
    ("user_id empty", _set(["user_id"], ""), [("/user_id", "R-LEGACY-USER")]),
    ("token_hash missing", _del(["token_hash"]), [("/token_hash", "R-LEGACY-TOKEN")]),
    ("token_hash not sha256", _set(["token_hash"], "md5:abc"), [("/token_hash", "R-LEGACY-TOKEN")]),
    ("token_hash uppercase hex", _set(["token_hash"], "sha256:" + "AB" * 32), [("/token_hash", "R-LEGACY-TOKEN")]),
    ("token_hash list", _set(["token_hash"], ["sha256:"]), [("/token_hash", "R-LEGACY-TOKEN")]),
    ("trigger_type missing", _del(["trigger_type"]), [("/trigger_type", "R-LEGACY-TRIGGER")]),
    ("trigger_type unknown", _set(["trigger_type"], "webhook"), [("/trigger_type", "R-LEGACY-TRIGGER")]),
    ("trigger_type boolean", _set(["trigger_type"], True), [("/trigger_type", "R-LEGACY-TRIGGER")]),
    ("steps missing", _del(["steps"]), None),
    ("steps empty", lambda d: (d.update(steps=[]), d.pop("data_bindings")), None),
    ("steps object", _set(["steps"], {"0": {}}), None),
    ("step not an object", _set(["steps", 2], "fs.write"), [("/steps/2", "R-LEGACY-STEPS")]),
    ("domain missing", _del(["steps", 0, "domain"]), [("/steps/0/domain", "R-LEGACY-STEP")]),
    ("method number", _set(["steps", 0, "method"], 1), [("/steps/0/method", "R-LEGACY-STEP")]),
    ("parameters missing", _del(["steps", 1, "parameters"]), [("/steps/1/parameters", "R-LEGACY-STEP")]),
    ("parameters array", _set(["steps", 1, "parameters"], []), [("/steps/1/parameters", "R-LEGACY-STEP")]),
    ("domain uppercase", _set(["steps", 0, "domain"], "Control"), [("/steps/0/domain", "R-LEGACY-ACTION")]),
    ("domain with a dot", _set(["steps", 0, "domain"], "control.x"), [("/steps/0/domain", "R-LEGACY-ACTION")]),
    ("method with dash", _set(["steps", 0, "method"], "do-it"), [("/steps/0/method", "R-LEGACY-ACTION")]),
    ("method empty", _set(["steps", 0, "method"], ""), [("/steps/0/method", "R-LEGACY-ACTION")]),
    ("bindings not an array", _set(["data_bindings"], {}), [("/data_bindings", "R-LEGACY-BINDINGS")]),
    ("binding not an object", _set(["data_bindings", 1], [0, 2]), [("/data_bindings/1", "R-LEGACY-BINDINGS")]),
    ("binding source_step missing", _del(["data_bindings", 0, "source_step"]),
     [("/data_bindings/0/source_step", "R-LEGACY-BINDINGS")]),
    ("binding step index boolean", _set(["data_bindings", 0, "source_step"], False),
     [("/data_bindings/0/source_step", "R-LEGACY-BINDINGS")]),
    ("binding step index out of range", _set(["data_bindings", 0, "target_step"], 3),
     [("/data_bindings/0/target_step", "R-LEGACY-BINDINGS")]),
    ("binding step index negative", _set(["data_bindings", 0, "source_step"], -1),
     [("/data_bindings/0/source_step", "R-LEGACY-BINDINGS")]),
    ("binding target path empty", _set(["data_bindings", 0, "target_path"], ""),
     [("/data_bindings/0/target_path", "R-LEGACY-BINDINGS")]),
    ("binding dotted path", _set(["data_bindings", 0, "source_path"], "value.v"),
     [("/data_bindings/0/source_path", "R-LEGACY-BINDINGS")]),
    ("binding path number", _set(["data_bindings", 0, "target_path"], 0),
     [("/data_bindings/0/target_path", "R-LEGACY-BINDINGS")]),
    ("binding from its own target", _set(["data_bindings", 1], {"source_step": 1, "source_path": "", "target_step": 1,
                                                               "target_path": "/other"}),
     [("/data_bindings/1/source_step", "R-LEGACY-BIND-ORDER")]),
    ("binding target repeated", lambda d: d["data_bindings"].append(dict(d["data_bindings"][0])),
     [("/data_bindings/2/target_path", "R-LEGACY-BINDINGS")]),
    ("forward binding", _set(["data_bindings", 0], {"source_step": 2, "source_path": "", "target_step": 1,
                                                     "target_path": "/value"}),
     [("/data_bindings/0/source_step", "R-LEGACY-BIND-ORDER")]),
]
CASES = [(n, m, e if e is not None else [("/steps", "R-LEGACY-STEPS")]) for n, m, e in CASES]


def test_valid_legacy_document():
    assert validate_legacy(valid_legacy()) == []
    no_bindings = valid_legacy()
    del no_bindings["data_bindings"]
    assert validate_legacy(no_bindings) == []


@pytest.mark.parametrize("mutate,expected", [(m, e) for _, m, e in CASES], ids=[n for n, _, _ in CASES])
def test_failing_legacy_document_reports_exact_rule_and_path(mutate, expected):
    assert pairs(validate_legacy(_legacy(mutate))) == sorted(expected)


def test_every_legacy_rule_has_a_failing_case():
    covered = {rule for _, _, expected in CASES for _, rule in expected}
    assert covered == set(LEGACY_RULES) - {"R-JSON"}


@pytest.mark.parametrize("data", [b"", b"[]", b'{"user_id": 1, "user_id": 2}', 5, None, {"x": float("nan")}])
def test_legacy_hygiene_is_R_JSON(data):
    assert pairs(validate_legacy(data)) == [("", "R-JSON")]


def test_conversion_is_deterministic_R_10():
    first, second = convert_legacy(valid_legacy()), convert_legacy(json.dumps(valid_legacy()).encode())
    assert first == second and digest(first) == digest(second)
    reordered = dict(reversed(list(valid_legacy().items())))
    assert digest(convert_legacy(reordered)) == digest(first)


def test_converted_plan_shape_R_10():
    doc = valid_legacy()
    plan = convert_legacy(doc)
    assert validate_plan(plan) == []
    d = digest(doc)
    assert plan["id"] == legacy_uuid(d, "plan")
    assert plan["version"] == 1 and plan["created_at"] == 1
    assert plan["name"] == "legacy plan " + d[7:19]
    assert plan["context_requirements"] == ["user_id"]
    assert plan["metadata"] == {"legacy": {"user_id": "alice", "token_hash": doc["token_hash"],
                                           "trigger_type": "manual", "digest": d}}
    ids = [s["id"] for s in plan["steps"]]
    assert ids == [legacy_uuid(d, f"step:{i}") for i in range(3)]
    assert all(UUID4.fullmatch(i) for i in [plan["id"], *ids]) and len(set(ids)) == 3
    assert [s["action"] for s in plan["steps"]] == ["control.echo", "control.echo", "fs.write"]
    assert [s.get("depends_on") for s in plan["steps"]] == [None, [ids[0]], [ids[1]]]
    assert [s["payload"] for s in plan["steps"]] == [st["parameters"] for st in doc["steps"]]
    assert plan["steps"][1]["inputs"] == {"/value": {"step": ids[0], "pointer": "/value/v"}}
    assert plan["steps"][2]["inputs"] == {"/content": {"step": ids[0], "pointer": ""}}
    assert "inputs" not in plan["steps"][0]
    parse_plan(plan)


def test_different_input_gives_different_ids_R_10():
    other = valid_legacy()
    other["user_id"] = "bob"
    a, b = convert_legacy(valid_legacy()), convert_legacy(other)
    assert a["id"] != b["id"] and a["steps"][0]["id"] != b["steps"][0]["id"]


def test_conversion_does_not_alias_the_input():
    doc = valid_legacy()
    plan = convert_legacy(doc)
    plan["steps"][0]["payload"]["value"]["v"] = 99
    assert doc["steps"][0]["parameters"]["value"]["v"] == 1


def test_convert_invalid_raises_PlanInvalid_with_legacy_violations():
    with pytest.raises(PlanInvalid) as info:
        convert_legacy(_legacy(_set(["trigger_type"], "webhook")))
    assert pairs(list(info.value.violations)) == [("/trigger_type", "R-LEGACY-TRIGGER")]


def test_oversized_parameters_are_caught_on_the_converted_plan_R_STEP_PAYLOAD():
    doc = valid_legacy()
    doc["steps"][2]["parameters"]["content"] = "x" * (1024 * 1024)
    assert validate_legacy(doc) == []
    assert pairs(validate_plan(convert_legacy(doc))) == [("/steps/2/payload", "R-STEP-PAYLOAD")]


def test_legacy_uuid_sets_version_and_variant_bits():
    for label in ("plan", "step:0", "step:1023"):
        u = legacy_uuid("sha256:" + "0" * 64, label)
        assert UUID4.fullmatch(u)


def test_validate_legacy_does_not_mutate_input():
    doc = valid_legacy()
    before = copy.deepcopy(doc)
    validate_legacy(doc)
    convert_legacy(doc)
    assert doc == before
