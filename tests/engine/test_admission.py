"""Fail-closed admission in the §5.0 order; a rejected execution is still journaled and persisted."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from ordinance.contract import ErrorCode, PlanStatus
from support import ENV, PLAN_ID, journal_kinds, make_plan, sid


def assert_rejected(store, r, code: ErrorCode):
    assert r.status is PlanStatus.FAILURE
    assert r.error.error_code is code
    assert r.steps_executed == 0
    assert all(s.status.value == "not_run" for s in r.step_results)
    # still an execution: persisted and journaled, with the full failure rule set
    assert store.get_result(r.execution_id)["error"]["error_code"] == code.value
    kinds = journal_kinds(store, r.execution_id)
    assert kinds[0] == "execution.received" and "admission.rejected" in kinds and kinds[-1] == "execution.result"
    assert sum(1 for k in kinds if k.startswith("outcome.")) == 13


def test_s0_6_malformed_json_is_plan_invalid_R_JSON(engine, store):
    r = engine.run(b'{"id": "x", "id": "y"}', environment=ENV)
    assert_rejected(store, r, ErrorCode.PLAN_INVALID)
    assert [v["rule"] for v in r.error.details["violations"]] == ["R-JSON"]


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"[1,2]", b'{"a": NaN}', b"{" * 100 + b"}" * 100, b""])
def test_s0_6_hostile_bytes_never_raise(engine, store, raw):
    r = engine.run(raw, environment=ENV)
    assert_rejected(store, r, ErrorCode.PLAN_INVALID)


def test_s1_plan_rule_violation_is_plan_invalid_with_violations(engine, store):
    plan = make_plan({"action": "control.noop"}, version=True)
    r = engine.run(plan, environment=ENV)
    assert_rejected(store, r, ErrorCode.PLAN_INVALID)
    assert {"path": "/version", "rule": "R-PLAN-VERSION"}.items() <= r.error.details["violations"][0].items()


def test_s5_8_R_PLAN_IMMUTABLE_other_body_same_id_version(engine, store):
    engine.run(make_plan({"action": "control.noop"}), environment=ENV)
    r = engine.run(make_plan({"action": "control.echo", "payload": {"value": 2}}), environment=ENV)
    assert_rejected(store, r, ErrorCode.PLAN_INVALID)
    assert r.error.details["violations"][0]["rule"] == "R-PLAN-IMMUTABLE"


def test_s2_context_missing_is_kept_apart_from_context_invalid(engine, store):
    r = engine.run(make_plan({"action": "control.noop"}), environment={})
    assert_rejected(store, r, ErrorCode.CONTEXT_MISSING)
    assert r.error.details["missing"] == ["TARGET"]


def test_s2_context_invalid_deadline(engine, store):
    now = int(time.time() * 1000)
    ctx = {"execution_id": str(uuid.uuid4()), "plan_id": PLAN_ID, "started_at": now, "deadline_ms": now + 10,
           "environment": ENV}
    r = engine.run(make_plan({"action": "control.noop"}), ctx)
    assert_rejected(store, r, ErrorCode.CONTEXT_INVALID)
    assert any(v["rule"] == "R-CTX-DEADLINE" for v in r.error.details["violations"])


def test_s2_context_for_another_plan_is_invalid(engine, store):
    now = int(time.time() * 1000)
    ctx = {"execution_id": str(uuid.uuid4()), "plan_id": str(uuid.uuid4()), "started_at": now,
           "deadline_ms": now + 3_600_000, "environment": ENV}
    r = engine.run(make_plan({"action": "control.noop"}), ctx)
    assert_rejected(store, r, ErrorCode.CONTEXT_INVALID)


def test_s5_0_unknown_action_is_action_not_found(engine, store):
    r = engine.run(make_plan({"action": "control.noop"}, {"action": "deploy.teleport"}), environment=ENV)
    assert_rejected(store, r, ErrorCode.ACTION_NOT_FOUND)
    assert r.error.details["missing"][0]["action"] == "deploy.teleport"


def test_s5_0_bad_static_payload_is_invalid_payload_before_anything_runs(engine, store, workspace):
    plan = make_plan({"action": "fs.write", "payload": {"path": "a.txt", "content": "x"}},
                     {"action": "control.sleep", "payload": {"ms": "soon"}})
    r = engine.run(plan, environment=ENV)
    assert_rejected(store, r, ErrorCode.INVALID_PAYLOAD)
    assert not (workspace / "a.txt").exists()


def test_s5_0_order_plan_rules_before_context(engine, store):
    # both the plan and the context are bad: the plan is reported (first check that fails)
    plan = make_plan({"action": "nope.nope"}, name="")
    r = engine.run(plan, environment={})
    assert r.error.error_code is ErrorCode.PLAN_INVALID


def test_s5_0_order_context_before_actions(engine):
    r = engine.run(make_plan({"action": "nope.nope"}), environment={})
    assert r.error.error_code is ErrorCode.CONTEXT_MISSING


def test_s6_2_path_escape_is_policy_denied_and_journaled(engine, store, workspace):
    plan = make_plan({"action": "fs.write", "payload": {"path": "../outside.txt", "content": "x"}})
    r = engine.run(plan, environment=ENV)
    assert_rejected(store, r, ErrorCode.POLICY_DENIED)
    recs = [json.loads(x.body) for x in store.journal(r.execution_id)]
    decisions = [x for x in recs if x["kind"] == "policy.decision"]
    assert decisions and decisions[0]["data"]["verdict"] == "deny"  # R-POLICY-AUDIT
    assert decisions[0]["data"]["policy_digest"].startswith("sha256:")
    assert not (workspace.parent / "outside.txt").exists()


def test_s6_3_R_POLICY_AUDIT_allow_decisions_are_journaled_too(engine, store):
    r = engine.run(make_plan({"action": "fs.write", "payload": {"path": "notes.txt", "content": "x"}}), environment=ENV)
    assert r.status is PlanStatus.SUCCESS
    recs = [json.loads(x.body) for x in store.journal(r.execution_id)]
    d = [x["data"] for x in recs if x["kind"] == "policy.decision"]
    assert d == [{"check": "envelope", "subject": {"action": "fs.write", "path": "notes.txt"}, "verdict": "allow",
                  "reason": "path allowed", "policy_digest": d[0]["policy_digest"], "step_ids": [sid(1)]}]


def test_s6_3_identical_decisions_are_one_record_naming_every_step(store, engine):
    """A decision is about a subject: many steps with the same subject share one record listing them all."""
    r = engine.run(make_plan(*[{"action": "control.noop"} for _ in range(50)]), environment=ENV)
    recs = [json.loads(x.body) for x in store.journal(r.execution_id)]
    d = [x["data"] for x in recs if x["kind"] == "policy.decision"]
    assert len(d) == 1 and d[0]["subject"] == {"action": "control.noop", "path": None}
    assert d[0]["step_ids"] == [sid(i) for i in range(1, 51)]


def test_s6_2_protected_path_cannot_be_changed(engine, store, workspace):
    (workspace / ".git").mkdir()
    r = engine.run(make_plan({"action": "fs.write", "payload": {"path": ".git/config", "content": "x"}}), environment=ENV)
    assert_rejected(store, r, ErrorCode.POLICY_DENIED)


def test_s6_2_envelope_action_allow_list_and_budget(store, workspace):
    from ordinance.actions import default_registry
    from ordinance.engine import Engine
    from ordinance.governance import Envelope

    env = Envelope(workspace=str(workspace), allowed_actions=("control.*",))
    r = Engine(store, envelope=env).run(make_plan({"action": "shell.run", "payload": {"argv": ["true"]}}),
                                               environment=ENV)
    assert r.error.error_code is ErrorCode.POLICY_DENIED

    reg = default_registry.copy()

    @reg.action("test.paid", cost_usd=0.4)
    async def paid(payload, ctx):
        return {}

    env = Envelope(workspace=str(workspace), max_budget_usd=1.0)
    e = Engine(store, envelope=env, registry=reg)
    ok = e.run(make_plan({"action": "test.paid"}, {"action": "test.paid"}, id=str(uuid.uuid4())), environment=ENV)
    assert ok.status is PlanStatus.SUCCESS
    over = e.run(make_plan({"action": "test.paid"}, {"action": "test.paid"}, {"action": "test.paid"},
                           id=str(uuid.uuid4())), environment=ENV)
    assert over.error.error_code is ErrorCode.POLICY_DENIED
    assert over.error.details["denials"][0]["step_id"] == sid(3)


def test_s6_1_authorization_on_requires_valid_token_scopes_and_roles(store, workspace):
    from ordinance.engine import Engine
    from ordinance.governance.tokens import issue_token

    now = int(time.time() * 1000)
    tok = issue_token(store, user_id="ada", roles=["deployer"], scopes=["control.*"], ttl_ms=60_000, now=now)
    e = Engine(store, workspace=str(workspace), authorization=True)
    plan = make_plan({"action": "control.noop"})
    assert e.run(plan, environment=ENV).error.error_code is ErrorCode.POLICY_DENIED  # no principal
    bad = e.run(plan, environment=ENV, principal={"user_id": "ada", "token": "wrong"})
    assert bad.error.error_code is ErrorCode.POLICY_DENIED and "unknown token" in bad.error.message
    good = e.run(plan, environment=ENV, principal={"user_id": "ada", "token": tok.token})
    assert good.status is PlanStatus.SUCCESS
    scope = e.run(make_plan({"action": "fs.mkdir", "payload": {"path": "d"}}, id=str(uuid.uuid4())),
                  environment=ENV, principal={"user_id": "ada", "token": tok.token})
    assert scope.error.error_code is ErrorCode.POLICY_DENIED
    store.revoke_token(tok.row.token_id)
    revoked = e.run(plan, environment=ENV, principal={"user_id": "ada", "token": tok.token})
    assert revoked.error.error_code is ErrorCode.POLICY_DENIED and "revoked" in revoked.error.message
    assert store.token_by_hash(tok.row.token_hash).token_hash != tok.token  # only the hash is stored


def test_s6_1_expired_token_is_denied(store, workspace):
    from ordinance.engine import Engine
    from ordinance.governance.tokens import issue_token

    tok = issue_token(store, user_id="ada", roles=[], scopes=["*"], ttl_ms=1, now=1000)
    e = Engine(store, workspace=str(workspace), authorization=True)
    r = e.run(make_plan({"action": "control.noop"}), environment=ENV, principal={"user_id": "ada", "token": tok.token})
    assert r.error.error_code is ErrorCode.POLICY_DENIED and "expired" in r.error.message


def test_s6_2_envelope_globs_apply_to_paths_supplied_by_bindings(store, workspace):
    """A path that only a binding supplies is unknown at admission; the envelope still applies at use."""
    from ordinance.engine import Engine
    from ordinance.governance import Envelope

    env = Envelope(workspace=str(workspace), denied_paths=("secrets/*",))
    (workspace / "secrets").mkdir()
    plan = make_plan(
        {"action": "control.echo", "payload": {"value": "secrets/key.txt"}},
        {"action": "fs.write", "depends_on": [sid(1)], "payload": {"content": "x"},
         "inputs": {"/path": {"step": sid(1), "pointer": "/value"}}},
    )
    r = Engine(store, envelope=env).run(plan, environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert r.step_results[1].status.value == "failed"
    assert not (workspace / "secrets" / "key.txt").exists()


def test_s6_2_a_path_refused_at_use_is_policy_denied_and_journaled(store, workspace, tmp_path):
    """A symlink planted by an earlier step, then used: refused on the opened descriptors, POLICY_DENIED (§4),
    and the decision is a policy.decision record (§6.3)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    from ordinance.engine import Engine

    plan = make_plan(
        {"action": "shell.run", "payload": {"argv": ["ln", "-s", str(outside), "link"]}},
        {"action": "fs.write", "payload": {"path": "link/planted.txt", "content": "x"}, "depends_on": [sid(1)]},
    )
    r = Engine(store, workspace=str(workspace)).run(plan, environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert r.error.error_code is ErrorCode.POLICY_DENIED and r.error.step_id == sid(2)
    assert not (outside / "planted.txt").exists()
    recs = [json.loads(x.body) for x in store.journal(r.execution_id)]
    denies = [x for x in recs if x["kind"] == "policy.decision" and x["data"]["verdict"] == "deny"]
    assert denies and denies[0]["data"]["at_use"] is True and denies[0]["data"]["subject"]["path"] == "link/planted.txt"


def test_R_CTX_OPAQUE_environment_is_read_only_at_every_depth(store, workspace):
    from ordinance.actions import default_registry
    from ordinance.engine import Engine

    reg = default_registry.copy()

    @reg.action("test.meddle")
    async def meddle(payload, ctx):
        try:
            ctx.environment["cfg"]["k"] = "changed"
        except TypeError:
            return {"refused": True}
        return {"refused": False}

    @reg.action("test.look")
    async def look(payload, ctx):
        return dict(ctx.environment["cfg"])

    env = {"TARGET": "x", "cfg": {"k": "orig"}}
    plan = make_plan({"action": "test.meddle"}, {"action": "test.look", "depends_on": [sid(1)]})
    r = Engine(store, registry=reg, workspace=str(workspace)).run(plan, environment=env)
    assert r.step_results[0].output == {"refused": True}
    assert r.step_results[1].output == {"k": "orig"}
    assert env == {"TARGET": "x", "cfg": {"k": "orig"}}  # the caller's environment is untouched
