"""§2 ExecutionContext rules (R-CTX-*), CONTEXT_MISSING vs CONTEXT_INVALID, and parse_context."""

from __future__ import annotations

import json

import pytest

from plan_builders import EXEC_ID, pairs, valid_context, valid_plan
from ordinance.contract.errors import ErrorCode
from ordinance.contract.models import ExecutionContext, TriggerType
from ordinance.contract.rules import CONTEXT_RULES
from ordinance.contract.validate import ContextInvalid, parse_context, parse_plan, validate_context

PLAN = valid_plan()  # timeout_ms 600 000, requirements TARGET and region.name
START = valid_context()["started_at"]


def _ctx(**changes):
    doc = valid_context()
    for key, value in changes.items():
        if value is _DROP:
            del doc[key]
        else:
            doc[key] = value
    return doc


_DROP = object()

CASES = [
    ("execution id missing", _ctx(execution_id=_DROP), [("/execution_id", "R-CTX-ID")]),
    ("execution id uppercase", _ctx(execution_id=EXEC_ID.upper()), [("/execution_id", "R-CTX-ID")]),
    ("execution id number", _ctx(execution_id=7), [("/execution_id", "R-CTX-ID")]),
    ("plan id missing", _ctx(plan_id=_DROP), [("/plan_id", "R-CTX-PLAN")]),
    ("plan id of another plan", _ctx(plan_id="ffffffff-0000-4000-8000-00000000abcd"), [("/plan_id", "R-CTX-PLAN")]),
    ("plan id not a uuid", _ctx(plan_id="plan"), [("/plan_id", "R-CTX-PLAN")]),
    ("started_at missing", _ctx(started_at=_DROP), [("/started_at", "R-CTX-STARTED")]),
    ("started_at zero", _ctx(started_at=0), [("/started_at", "R-CTX-STARTED")]),
    ("started_at boolean", _ctx(started_at=True), [("/started_at", "R-CTX-STARTED")]),
    ("started_at float", _ctx(started_at=float(START)), [("/started_at", "R-CTX-STARTED")]),
    ("deadline missing", _ctx(deadline_ms=_DROP), [("/deadline_ms", "R-CTX-DEADLINE")]),
    ("deadline before start", _ctx(deadline_ms=START - 1), [("/deadline_ms", "R-CTX-DEADLINE")]),
    ("deadline equal to start", _ctx(deadline_ms=START), [("/deadline_ms", "R-CTX-DEADLINE")]),
    ("deadline window shorter than plan timeout", _ctx(deadline_ms=START + 599_999), [("/deadline_ms", "R-CTX-DEADLINE")]),
    ("deadline above 2^53-1", _ctx(deadline_ms=2**53), [("/deadline_ms", "R-CTX-DEADLINE")]),
    ("deadline string", _ctx(deadline_ms=str(START + 600_000)), [("/deadline_ms", "R-CTX-DEADLINE")]),
    ("environment missing", _ctx(environment=_DROP), [("/environment", "R-CTX-ENV")]),
    ("environment array", _ctx(environment=[["TARGET", "x"]]), [("/environment", "R-CTX-ENV")]),
    ("environment null", _ctx(environment=None), [("/environment", "R-CTX-ENV")]),
    ("requirement missing", _ctx(environment={"TARGET": "x"}), [("/environment/region.name", "R-CTX-REQS")]),
    ("all requirements missing", _ctx(environment={}),
     [("/environment/TARGET", "R-CTX-REQS"), ("/environment/region.name", "R-CTX-REQS")]),
    ("principal not an object", _ctx(principal="alice"), [("/principal", "R-CTX-PRINCIPAL")]),
    ("principal token missing", _ctx(principal={"user_id": "alice"}), [("/principal/token", "R-CTX-PRINCIPAL")]),
    ("principal user empty", _ctx(principal={"user_id": "", "token": "t"}), [("/principal/user_id", "R-CTX-PRINCIPAL")]),
    ("principal token too long", _ctx(principal={"user_id": "a", "token": "t" * 513}),
     [("/principal/token", "R-CTX-PRINCIPAL")]),
    ("principal user not a string", _ctx(principal={"user_id": 1, "token": "t"}), [("/principal/user_id", "R-CTX-PRINCIPAL")]),
    ("principal extra field", _ctx(principal={"user_id": "a", "token": "t", "roles": []}), [("/principal/roles", "R-NO-EXTRA")]),
    ("trigger unknown", _ctx(trigger_type="cron"), [("/trigger_type", "R-CTX-TRIGGER")]),
    ("trigger not a string", _ctx(trigger_type=None), [("/trigger_type", "R-CTX-TRIGGER")]),
    ("unknown context field", _ctx(user="alice"), [("/user", "R-NO-EXTRA")]),
]


def test_valid_context_has_no_violations():
    assert validate_context(valid_context(), PLAN) == []


@pytest.mark.parametrize("doc,expected", [(d, e) for _, d, e in CASES], ids=[n for n, _, _ in CASES])
def test_failing_context_reports_exact_rule_and_path(doc, expected):
    assert pairs(validate_context(doc, PLAN)) == expected


def test_every_context_rule_has_a_failing_case():
    covered = {rule for _, _, expected in CASES for _, rule in expected}
    assert covered == set(CONTEXT_RULES) - {"R-JSON"}


def test_environment_is_opaque_R_CTX_OPAQUE():
    """Only presence of required keys is checked; values of any type (null included) are fine, extras too."""
    env = {"TARGET": None, "region.name": {"nested": [1, 2.5]}, "unrelated/key~": "x"}
    assert validate_context(_ctx(environment=env), PLAN) == []


def test_missing_requirement_key_path_is_escaped_R_CTX_REQS():
    plan = valid_plan()
    plan["context_requirements"] = ["a.b", "T_1"]
    assert pairs(validate_context(_ctx(environment={"T_1": 0}), plan)) == [("/environment/a.b", "R-CTX-REQS")]


def test_deadline_window_uses_the_default_plan_timeout_R_CTX_DEADLINE():
    plan = valid_plan()
    del plan["timeout_ms"]  # default 3 600 000
    assert pairs(validate_context(_ctx(deadline_ms=START + 600_000), plan)) == [("/deadline_ms", "R-CTX-DEADLINE")]
    assert validate_context(_ctx(deadline_ms=START + 3_600_000), plan) == []


def test_plan_model_and_plan_document_agree():
    model = parse_plan(PLAN)
    for doc, _ in [(d, e) for _, d, e in CASES]:
        assert validate_context(doc, model) == validate_context(doc, PLAN)


def test_context_as_bytes_R_JSON_and_agreement():
    doc = _ctx(trigger_type="cron")
    assert validate_context(json.dumps(doc).encode(), PLAN) == validate_context(doc, PLAN)
    assert pairs(validate_context(b"[]", PLAN)) == [("", "R-JSON")]


@pytest.mark.parametrize("plan", [None, 5, "not json", b"\xff", {"id": 3, "timeout_ms": "x", "context_requirements": 1}])
def test_unusable_plan_never_raises_and_skips_plan_checks(plan):
    assert validate_context(valid_context(), plan) == []


def test_parse_context_builds_the_model():
    ctx = parse_context(json.dumps(valid_context()).encode(), PLAN)
    assert isinstance(ctx, ExecutionContext)
    assert ctx.trigger_type is TriggerType.API and ctx.principal is not None and ctx.principal.user_id == "alice"
    assert ctx.to_document() == valid_context()
    assert ctx.effective_deadline(parse_plan(PLAN)) == START + 600_000


def test_only_missing_keys_is_CONTEXT_MISSING_R_CTX_REQS():
    with pytest.raises(ContextInvalid) as info:
        parse_context(_ctx(environment={"other": 1}), PLAN)
    exc = info.value
    assert exc.code is ErrorCode.CONTEXT_MISSING
    assert exc.missing == ("TARGET", "region.name")
    assert exc.details()["missing"] == ["TARGET", "region.name"]
    assert [v["rule"] for v in exc.details()["violations"]] == ["R-CTX-REQS", "R-CTX-REQS"]


def test_missing_keys_plus_another_problem_is_CONTEXT_INVALID():
    with pytest.raises(ContextInvalid) as info:
        parse_context(_ctx(environment={}, trigger_type="cron"), PLAN)
    assert info.value.code is ErrorCode.CONTEXT_INVALID
    assert "missing" not in info.value.details()


@pytest.mark.parametrize("data", [b"{", b"[]", _ctx(plan_id="x"), _ctx(environment=_DROP)])
def test_structural_problems_are_CONTEXT_INVALID(data):
    with pytest.raises(ContextInvalid) as info:
        parse_context(data, PLAN)
    assert info.value.code is ErrorCode.CONTEXT_INVALID
    assert info.value.violations
