"""§9 deploy bundles, §10 the legacy dialect, §11 non-goals, §12 interfaces and built-in actions."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from typing import Any

from ..harness import ENV, Harness, code_of, describe, sid, statuses
from ..registry import NotImplementedClause, check, ensure, equal


def _cli_tree() -> dict[str, Any]:
    """{"run": <command>, "token issue": <command>, …} of the ``ordinance`` CLI."""
    import typer.main

    from ...cli.app import app

    out: dict[str, Any] = {}

    def walk(cmd: Any, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, path + [name])
        else:
            out[" ".join(path)] = cmd

    walk(typer.main.get_command(app), [])
    return out


def _cli(args: list[str]) -> tuple[int, str]:
    """Run the ``ordinance`` CLI in-process; (exit code, stdout)."""
    from typer.testing import CliRunner

    from ...cli.app import app

    res = CliRunner().invoke(app, args, catch_exceptions=False)
    return res.exit_code, res.stdout


# ----------------------------------------------------------------------------------------------------------- §9

@check("§9", "deploy BUNDLE: payload integrity, runtime stack compatibility, apply")
def _(h: Harness) -> None:
    has_cmd = "deploy" in _cli_tree()
    has_mod = any(importlib.util.find_spec(m) is not None for m in ("ordinance.deploy", "ordinance.bundle"))
    if not has_cmd and not has_mod:
        raise NotImplementedClause(
            "there is no `ordinance deploy` command and no deploy module; only the Engine(preconditions=…) admission "
            "hook exists (its order is checked under §5.0)")
    raise AssertionError("deploy now exists but the conformance suite has no §9 checks yet: add them")


# ---------------------------------------------------------------------------------------------------------- §10

def _legacy(th: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "user_id": "lee", "token_hash": th, "trigger_type": "api",
        "steps": [{"domain": "control", "method": "echo", "parameters": {"value": {"n": 7}}},
                  {"domain": "control", "method": "echo", "parameters": {"value": None}},
                  {"domain": "control", "method": "noop", "parameters": {}}],
        "data_bindings": [{"source_step": 0, "source_path": "/value/n", "target_step": 1, "target_path": "/value"}],
    }
    doc.update(over)
    return doc


@check("§10", "legacy rules: exact fields, non-empty steps, exact step shape, backward bindings only")
def _(h: Harness) -> str:
    from ...contract.legacy import validate_legacy

    th = "sha256:" + "a" * 64
    equal([v.to_dict() for v in validate_legacy(_legacy(th))], [], "violations of a valid legacy document")
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("an extra field", _legacy(th, extra=1), "R-LEGACY-EXTRA"),
        ("no user_id", {k: v for k, v in _legacy(th).items() if k != "user_id"}, "R-LEGACY-USER"),
        ("a token_hash that is not a sha256 digest", _legacy("secret"), "R-LEGACY-TOKEN"),
        ("no steps", _legacy(th, steps=[], data_bindings=[]), "R-LEGACY-STEPS"),
        ("a step without method", _legacy(th, steps=[{"domain": "control", "parameters": {}}], data_bindings=[]),
         "R-LEGACY-STEP"),
        ("a step with an extra field", _legacy(th, steps=[{"domain": "control", "method": "noop", "parameters": {},
                                                           "x": 1}], data_bindings=[]), "R-LEGACY-EXTRA"),
        ("a forward binding", _legacy(th, data_bindings=[{"source_step": 1, "source_path": "", "target_step": 0,
                                                          "target_path": "/v"}]), "R-LEGACY-BIND-ORDER"),
        ("a binding to itself", _legacy(th, data_bindings=[{"source_step": 1, "source_path": "", "target_step": 1,
                                                            "target_path": "/v"}]), "R-LEGACY-BIND-ORDER"),
        ("parameters not an object", _legacy(th, steps=[{"domain": "control", "method": "noop", "parameters": []}],
                                             data_bindings=[]), "R-LEGACY-STEP"),
        ("trigger_type true", _legacy(th, trigger_type=True), "R-LEGACY-TRIGGER"),
    ]
    for what, doc, rule in bad:
        rules = {v.rule for v in validate_legacy(doc)}
        ensure(rule in rules, f"legacy document with {what}: expected {rule}, got {sorted(rules)}")
    return f"{len(bad)} malformed legacy documents"


@check("§10", "conversion is deterministic: chained steps, action = domain.method, bindings become inputs")
def _(h: Harness) -> None:
    from ...contract.canonical import digest
    from ...contract.legacy import convert_legacy
    from ...contract.validate import validate_plan

    doc = _legacy("sha256:" + "b" * 64)
    a = convert_legacy(doc)
    b = convert_legacy(json.loads(json.dumps(doc), object_pairs_hook=lambda p: dict(reversed(p))))
    equal(digest(b), digest(a), "digest of the plan converted from the same document with keys reordered")
    equal(validate_plan(a), [], "violations of the converted plan")
    steps = a["steps"]
    equal([s["action"] for s in steps], ["control.echo", "control.echo", "control.noop"], "actions")
    equal([s.get("depends_on", []) for s in steps], [[], [steps[0]["id"]], [steps[1]["id"]]], "each step depends on "
                                                                                              "the previous one")
    equal(steps[1].get("inputs"), {"/value": {"step": steps[0]["id"], "pointer": "/value/n"}}, "the binding")
    other = convert_legacy(_legacy("sha256:" + "c" * 64))
    ensure(other["id"] != a["id"], "two different legacy documents got the same plan id")


@check("§10", "user_id + token_hash become the principal, checked against the token store")
def _(h: Harness) -> None:
    from ...governance.tokens import issue_token

    tok = issue_token(h.store, user_id="lee", roles=[], scopes=["control.*"], ttl_ms=600_000,
                      now=int(time.time() * 1000))
    th = "sha256:" + hashlib.sha256(tok.token.encode()).hexdigest()
    r = h.run(_legacy(th), dialect="legacy", environment={"user_id": "lee"})
    equal(statuses(r), ["succeeded"] * 3, f"a legacy plan with a known token: {describe(r)}")
    equal(r.step_results[1].output, {"value": 7}, "the bound value in step 2")
    r = h.run(_legacy("sha256:" + "d" * 64), dialect="legacy", environment={"user_id": "lee"})
    equal((code_of(r), r.steps_executed), ("POLICY_DENIED", 0), f"a legacy plan with an unknown token: {describe(r)}")
    r = h.run(_legacy(th, user_id="eve"), dialect="legacy", environment={"user_id": "eve"})
    equal(code_of(r), "POLICY_DENIED", f"a legacy plan naming another user: {describe(r)}")
    r = h.run(_legacy(th, steps=[]), dialect="legacy", environment={"user_id": "lee"})
    equal(code_of(r), "PLAN_INVALID", f"an invalid legacy document: {describe(r)}")


# ---------------------------------------------------------------------------------------------------------- §11

@check("§11", "no automatic retry or resumption of a plan, not even by a new engine or recovery")
def _(h: Harness) -> None:
    plan = h.plan({"action": "control.fail", "payload": {"fail_attempts": 1}})
    ctx = h.context(plan)
    r = h.run(plan, ctx)
    equal((code_of(r), r.step_results[0].attempts), ("STEP_FAILED", 1), describe(r))
    time.sleep(0.01)
    eng = h.engine(lease_ms=100)
    equal(eng.recover(), [], "executions recovered after a clean failure")
    again = h.run(plan, dict(ctx), engine=h.engine())
    equal(again.to_document(), r.to_document(), "the result when the same execution is submitted again")
    rows = h.store.list_executions(limit=100)
    equal(len(rows), 1, "executions in the store (a plan is never retried as a new execution)")


@check("§11", "no dependency resolution at run time, and no automatic nested expansion")
def _(h: Harness) -> None:
    cyc = h.plan({"action": "control.noop", "depends_on": [sid(2)]}, {"action": "control.noop", "depends_on": [sid(1)]})
    r = h.run(cyc)
    equal((code_of(r), r.steps_executed), ("PLAN_INVALID", 0), f"a cyclic plan: {describe(r)}")
    rules = {v["rule"] for v in r.error.details.get("violations", [])}
    ensure("R-PLAN-ACYCLIC" in rules, f"the cycle is not reported as R-PLAN-ACYCLIC: {rules}")
    dangling = h.plan({"action": "control.noop", "depends_on": [sid(7)]})
    r = h.run(dangling)
    equal(code_of(r), "PLAN_INVALID", f"a dependency on a step that does not exist: {describe(r)}")
    child = h.plan({"action": "control.noop"})
    looks_nested = h.plan({"action": "control.echo", "payload": {"value": {"plan": child, "action": "execute_plan"}}})
    before = len(h.store.list_executions(limit=1000))
    r = h.run(looks_nested)
    equal(r.status.value, "success", describe(r))
    equal(len(h.store.list_executions(limit=1000)), before + 1, "executions created by a plan that only carries a "
                                                                 "plan-shaped value")


@check("§11", "no soft timeouts: a step past its limit is stopped, never allowed to finish late")
def _(h: Harness) -> None:
    r = h.run(h.plan({"action": "control.sleep", "payload": {"ms": 1_000}, "timeout_ms": 100},
                     {"action": "control.noop", "depends_on": [sid(1)]}))
    equal((code_of(r), statuses(r)), ("STEP_TIMEOUT", ["failed", "not_run"]), describe(r))
    equal(r.step_results[0].output, None, "output of the step stopped at its timeout")
    ensure(r.duration_ms < 1_000, f"the plan waited {r.duration_ms} ms, as long as the step's own work")


# ---------------------------------------------------------------------------------------------------------- §12

@check("§12", "the CLI has the contract's commands, and every command takes --store")
def _(h: Harness) -> str:
    tree = _cli_tree()
    wanted = ["validate", "run", "show", "list", "recover", "schema", "journal verify", "journal export",
              "journal prove", "token issue", "token revoke", "token list", "conformance"]
    missing = [c for c in wanted if c not in tree]
    ensure(not missing, f"missing commands: {missing}")
    no_store = [name for name, cmd in tree.items()
                if not any("--store" in getattr(p, "opts", []) for p in cmd.params)]
    ensure(not no_store, f"commands without --store: {no_store}")
    return f"{len(tree)} commands (deploy is reported under §9)"


@check("§12", "validate: exit 0 / 1 / 2 and --json prints {valid, violations} alone")
def _(h: Harness) -> None:
    good = h.root / "good.json"
    bad = h.root / "bad.json"
    good.write_text(json.dumps(h.plan({"action": "control.noop"})))
    bad.write_text(json.dumps(h.plan({"action": "control.noop", "x": 1}, version=0)))
    store = ["--store", str(h.db_path)]
    code, out = _cli(["validate", str(good), "--json", *store])
    equal((code, json.loads(out)), (0, {"valid": True, "violations": []}), "validate --json of a valid plan")
    code, out = _cli(["validate", str(bad), "--json", *store])
    doc = json.loads(out)
    equal((code, doc["valid"]), (1, False), "validate --json of an invalid plan")
    equal([(v["path"], v["rule"]) for v in doc["violations"]], [("/steps/0/x", "R-NO-EXTRA"),
                                                                 ("/version", "R-PLAN-VERSION")], "violations")
    ensure(all({"path", "rule", "message"} <= set(v) for v in doc["violations"]), "violation fields")
    code, _ = _cli(["validate", str(h.root / "missing.json"), *store])
    equal(code, 2, "exit code of validate on a missing file")


@check("§12", "run: exit 0 success, 3 partial, 1 failure; --json prints the PlanResult alone")
def _(h: Harness) -> None:
    from ...contract.models import PlanResult

    store = ["--store", str(h.db_path), "--workspace", str(h.workspace)]
    plans = {0: h.plan({"action": "control.noop"}),
             3: h.plan({"action": "control.noop"}, {"action": "control.fail", "on_failure": "skip"}),
             1: h.plan({"action": "control.fail"})}
    for want, plan in plans.items():
        path = h.root / f"plan{want}.json"
        path.write_text(json.dumps(plan))
        code, out = _cli(["run", str(path), "--env", f"TARGET={ENV['TARGET']}", "--json", *store])
        try:
            result = PlanResult.model_validate(json.loads(out))
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(f"run --json stdout is not a PlanResult alone: {exc}: {out[:200]!r}") from None
        equal(code, want, f"exit code of run for a {result.status.value}")
        ensure(h.store.get_result(result.execution_id) is not None, "the CLI run is not in the given --store")
    code, _ = _cli(["run", str(h.root / "nope.json"), *store])
    equal(code, 2, "exit code of run on a missing file")


@check("§12", "built-in actions exist with the contract's names, payloads and outputs")
def _(h: Harness) -> str:
    names = ["control.noop", "control.echo", "control.sleep", "control.spin", "control.fail", "shell.run", "fs.write",
             "fs.read", "fs.delete", "fs.mkdir", "http.request", "execute_plan"]
    eng = h.engine()
    missing = [n for n in names if n not in eng.registry]
    ensure(not missing, f"missing built-in actions: {missing}")
    r = h.run(h.plan({"action": "control.noop"},
                     {"action": "control.echo", "payload": {"value": [1, {"a": None}]}},
                     {"action": "control.sleep", "payload": {"ms": 1}},
                     {"action": "control.spin", "payload": {"ms": 1}},
                     {"action": "control.fail", "payload": {"fail_attempts": 1}, "on_failure": "retry",
                      "retry_policy": {"initial_delay_ms": 0}},
                     {"action": "shell.run", "payload": {"argv": ["sh", "-c", "cat; echo err >&2; exit 3"],
                                                         "stdin": "in", "allow_nonzero": True}},
                     {"action": "fs.mkdir", "payload": {"path": "d"}},
                     {"action": "fs.write", "payload": {"path": "d/f.txt", "content": "hello"}, "depends_on": [sid(7)]},
                     {"action": "fs.read", "payload": {"path": "d/f.txt"}, "depends_on": [sid(8)]},
                     {"action": "fs.delete", "payload": {"path": "d/f.txt"}, "depends_on": [sid(9)]}), engine=eng)
    equal(r.status.value, "success", describe(r))
    out = [s.output for s in r.step_results]
    equal(out[0], {}, "control.noop output")
    equal(out[1], {"value": [1, {"a": None}]}, "control.echo output")
    equal(r.step_results[4].attempts, 2, "control.fail with fail_attempts 1: attempts")
    ensure(isinstance(out[5], dict) and {"exit_code", "stdout", "stderr"} <= set(out[5]),
           f"shell.run output: {out[5]}")
    equal((out[5]["exit_code"], out[5]["stdout"], out[5]["stderr"]), (3, "in", "err\n"), "shell.run output")
    ensure("hello" in json.dumps(out[8]), f"fs.read output does not contain the file: {out[8]}")
    ensure(not h.file("d/f.txt").exists(), "fs.delete left the file")
    return f"{len(names)} actions present, 10 run"


@check("§12", "Python API: Engine.run(plan, context) -> PlanResult; a registered action's schema is enforced")
def _(h: Harness) -> None:
    from pydantic import BaseModel, StrictInt

    from ...actions import ActionContext, ActionRegistry
    from ...contract.models import PlanResult
    from ...engine import Engine

    class Inc(BaseModel):
        n: StrictInt

    reg = h.registry

    @reg.action("conformance.api.inc", input=Inc)
    async def inc(payload: Inc, ctx: ActionContext) -> dict[str, Any]:
        return {"n": payload.n + 1}

    ensure(isinstance(reg, ActionRegistry), "registry type")
    eng = Engine(h.store, workspace=str(h.workspace), registry=reg)
    plan = h.plan({"action": "conformance.api.inc", "payload": {"n": 41}})
    r = eng.run(plan, h.context(plan))
    ensure(isinstance(r, PlanResult), f"Engine.run returned {type(r).__name__}")
    equal(r.step_results[0].output, {"n": 42}, "output of the registered action")
    r = eng.run(h.plan({"action": "conformance.api.inc", "payload": {"n": "41"}}), environment=dict(ENV))
    equal((code_of(r), r.steps_executed), ("INVALID_PAYLOAD", 0), f"a payload that fails the input schema: "
                                                                  f"{describe(r)}")
