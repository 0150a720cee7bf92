"""§5.0 admission, §5.1 scheduling, §5.2 attempts, §5.3 hard timeouts, §5.4 nested plans, §5.5 outcome."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from ..harness import ENV, Harness, code_of, describe, sid, statuses
from ..registry import check, ensure, equal

_FAILURE_SET = ["stop_scheduling", "stop_in_flight", "classify_errors", "compensate", "record_completion",
                "build_result", "validate_result", "persist_result", "update_registry", "emit_event",
                "release_resources", "notify_error_handler", "return_result"]


# --------------------------------------------------------------------------------------------------------- §5.0

@check("§5.0", "checks run in order: the first failing one decides the code")
def _(h: Harness) -> str:
    from ...contract.errors import ErrorCode
    from ...governance.envelope import Envelope

    calls: list[str] = []

    def hook(plan: Any, ctx: Any, run: Any) -> Any:
        calls.append(plan.id)
        return (ErrorCode.PRECONDITION_FAILED, "bundle precondition failed (conformance hook)",
                {"failure_class": "payload_integrity"})

    env = Envelope(workspace=str(h.workspace), allowed_actions=("control.*",))
    eng = h.engine(envelope=env, preconditions=hook)
    bad_payload = {"action": "control.sleep", "payload": {"ms": "soon"}}
    denied = {"action": "shell.run", "payload": {"argv": ["true"]}}
    unknown = {"action": "no.such.action"}
    cases = [
        ("plan rules before context rules", h.plan({"action": "control.noop", "oops": 1}, context_requirements=["MISSING"]),
         "PLAN_INVALID"),
        ("context before actions", h.plan(unknown, context_requirements=["MISSING"]), "CONTEXT_MISSING"),
        ("actions before payloads", h.plan(bad_payload, unknown), "ACTION_NOT_FOUND"),
        ("payloads before policy", h.plan(denied, bad_payload), "INVALID_PAYLOAD"),
        ("policy before preconditions", h.plan(denied), "POLICY_DENIED"),
        ("preconditions last", h.plan({"action": "control.noop"}), "PRECONDITION_FAILED"),
    ]
    for what, plan, code in cases:
        r = h.run(plan, engine=eng)
        equal(code_of(r), code, f"{what}: {describe(r)}")
        equal((r.status.value, r.steps_executed), ("failure", 0), f"{what}: status and steps_executed")
    equal(len(calls), 1, "calls of the precondition hook (only the plan that passed every other check)")
    return f"{len(cases)} admission failures in order"


@check("§5.0", "a rejected execution is journaled, persisted and announced like any other")
def _(h: Harness) -> None:
    from ...engine import CallbackSink

    events: list[dict[str, Any]] = []
    eng = h.engine(sinks=[CallbackSink(events.append)])
    r = h.run(h.plan({"action": "no.such.action"}), engine=eng)
    equal(code_of(r), "ACTION_NOT_FOUND", describe(r))
    kinds = h.kinds(r.execution_id)
    ensure("admission.rejected" in kinds, f"no admission.rejected record: {kinds}")
    ensure(not any(k.startswith("step.attempt") for k in kinds), f"a step attempt was journaled: {kinds}")
    equal(h.outcome_kinds(r.execution_id), _FAILURE_SET, "outcome records of a rejected execution")
    equal(kinds[-1], "execution.result", "last journal record")
    equal(h.store.get_result(r.execution_id), r.to_document(), "the stored result of the rejected execution")
    row = h.store.get_execution(r.execution_id)
    equal(row.status if row else None, "failure", "the execution row's status")
    types = [e["type"] for e in events]
    ensure("ordinance.plan_execution_failure" in types, f"no plan_execution_failure event: {types}")
    ensure(not any(t == "ordinance.step_started" for t in types), f"a step_started event for a rejected plan: {types}")


@check("§5.0", "admission is fail-closed on malformed input of every kind (never an exception)")
def _(h: Harness) -> str:
    plan = h.plan({"action": "control.noop"})
    inputs: list[tuple[Any, Any, str]] = [
        (b"\xff\xfe not json", None, "PLAN_INVALID"),
        ("[]", None, "PLAN_INVALID"),
        (42, None, "PLAN_INVALID"),
        (plan, b"{not json", "CONTEXT_INVALID"),
        (plan, {"execution_id": str(uuid.uuid4())}, "CONTEXT_INVALID"),
        (plan, [], "CONTEXT_INVALID"),
    ]
    for p, c, code in inputs:
        try:
            r = h.run(p, c) if c is not None else h.run(p)
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(f"Engine.run({p!r:.40}, {c!r:.40}) raised {type(exc).__name__}: {exc}") from None
        equal(code_of(r), code, f"plan {p!r:.40} / context {c!r:.40}: {describe(r)}")
        equal(r.steps_executed, 0, "steps_executed")
        ensure(h.store.get_result(r.execution_id) is not None, f"the rejected execution {r.execution_id} is not stored")
    return f"{len(inputs)} malformed submissions rejected and stored"


# --------------------------------------------------------------------------------------------------------- §5.1

@check("§5.1", "ready steps start in plan order, at most max_parallel at once")
def _(h: Harness) -> str:
    from ..actions import gauge_peak

    key = str(uuid.uuid4())
    steps = [{"action": "conformance.gauge", "payload": {"key": key, "ms": 30}} for _ in range(5)]
    r = h.run(h.plan(*steps, max_parallel=2))
    equal(statuses(r), ["succeeded"] * 5, describe(r))
    equal(gauge_peak(key), 2, "the largest number of attempts running at once (max_parallel 2)")
    starts = [x["step_id"] for x in h.records(r.execution_id) if x["kind"] == "step.attempt_started"]
    equal(starts, [sid(i) for i in range(1, 6)], "order of the attempt starts")
    key2 = str(uuid.uuid4())
    r = h.run(h.plan(*[{"action": "conformance.gauge", "payload": {"key": key2, "ms": 30}} for _ in range(4)]))
    equal(gauge_peak(key2), 4, "attempts running at once with the default max_parallel (8) and 4 steps")
    return "peak 2 of 5 with max_parallel 2"


@check("§5.1", "a step starts only after every dependency succeeded")
def _(h: Harness) -> None:
    plan = h.plan({"action": "control.sleep", "payload": {"ms": 20}},
                  {"action": "control.noop"},
                  {"action": "control.noop", "depends_on": [sid(1), sid(2)]},
                  {"action": "control.noop", "depends_on": [sid(3)]})
    r = h.run(plan)
    equal(statuses(r), ["succeeded"] * 4, describe(r))
    recs = h.records(r.execution_id)
    seq = {(x["kind"], x.get("step_id")): x["seq"] for x in recs}
    for step, deps in ((3, (1, 2)), (4, (3,))):
        for d in deps:
            ensure(seq[("step.attempt_succeeded", sid(d))] < seq[("step.attempt_started", sid(step))],
                   f"step {step} started before its dependency {d} succeeded")


@check("R-DETERMINISM", "the same action outcomes give the same step statuses and journal record kinds")
def _(h: Harness) -> str:
    plan = h.plan({"action": "control.noop"},
                  {"action": "control.fail", "on_failure": "skip", "depends_on": [sid(1)]},
                  {"action": "control.noop", "depends_on": [sid(2)]},
                  {"action": "control.echo", "payload": {"value": 1}, "depends_on": [sid(1)]},
                  {"action": "control.fail", "payload": {"fail_attempts": 1}, "on_failure": "retry",
                   "retry_policy": {"initial_delay_ms": 0}, "depends_on": [sid(4)]},
                  max_parallel=1)
    seen = set()
    for _ in range(4):
        r = h.run(plan)
        seen.add((tuple(statuses(r)), tuple(h.kinds(r.execution_id))))
    equal(len(seen), 1, "distinct (statuses, journal kinds) over 4 runs of the same sequential plan")
    (st, kinds), = seen
    equal(list(st), ["succeeded", "skipped", "not_run", "succeeded", "succeeded"], "statuses")
    return f"{len(kinds)} records, identical kinds in 4 runs"


@check("R-DETERMINISM", "with steps running in parallel, each step's journal kinds and status are the same")
def _(h: Harness) -> str:
    plan = h.plan({"action": "control.sleep", "payload": {"ms": 5}},
                  {"action": "control.fail", "on_failure": "skip"},
                  {"action": "control.noop", "depends_on": [sid(2)]},
                  {"action": "control.spin", "payload": {"ms": 5}},
                  {"action": "control.fail", "payload": {"fail_attempts": 1}, "on_failure": "retry",
                   "retry_policy": {"initial_delay_ms": 5}},
                  {"action": "control.echo", "payload": {"value": 1}, "depends_on": [sid(1), sid(4)]})
    seen = set()
    for _ in range(5):
        r = h.run(plan)
        per: dict[str, list[str]] = {}
        for x in h.records(r.execution_id):
            per.setdefault(x.get("step_id") or "", []).append(x["kind"])
        seen.add((tuple(statuses(r)), tuple(sorted((k, tuple(v)) for k, v in per.items()))))
    equal(len(seen), 1, "distinct (statuses, per-step journal kinds) over 5 runs of the same parallel plan")
    return "5 runs; the interleaving of different steps' records follows real time"


# --------------------------------------------------------------------------------------------------------- §5.2

@check("§5.2", "halt ends the plan; skip marks transitive dependents not_run while independent branches go on")
def _(h: Harness) -> None:
    r = h.run(h.plan({"action": "control.fail", "on_failure": "skip"},
                     {"action": "control.noop", "depends_on": [sid(1)]},
                     {"action": "control.noop", "depends_on": [sid(2)]},
                     {"action": "control.noop"},
                     {"action": "control.noop", "depends_on": [sid(4)]}))
    equal(statuses(r), ["skipped", "not_run", "not_run", "succeeded", "succeeded"], f"skip: {describe(r)}")
    equal(r.status.value, "partial", "status with a skipped step and a succeeding branch")
    r = h.run(h.plan({"action": "control.noop"},
                     {"action": "control.fail", "depends_on": [sid(1)]},
                     {"action": "control.noop", "depends_on": [sid(2)]},
                     {"action": "control.noop", "depends_on": [sid(1)]}, max_parallel=1))
    equal(r.status.value, "failure", f"halt: {describe(r)}")
    equal(code_of(r), "STEP_FAILED", "code of a halting failure")
    equal(statuses(r)[:3], ["succeeded", "failed", "not_run"], f"halt: {describe(r)}")


@check("§5.2", "retry only when on_failure retry, code in retry_on, recoverable, attempts left, before the deadline")
def _(h: Harness) -> str:
    fast = {"initial_delay_ms": 0}
    cases = [
        ("recovers on attempt 3", {"action": "control.fail", "payload": {"fail_attempts": 2}, "on_failure": "retry",
                                   "retry_policy": {**fast, "max_attempts": 3}}, "succeeded", 3),
        ("exhausted", {"action": "control.fail", "on_failure": "retry", "retry_policy": {**fast, "max_attempts": 3}},
         "failed", 3),
        ("not recoverable", {"action": "control.fail", "payload": {"recoverable": False}, "on_failure": "retry",
                             "retry_policy": {**fast, "max_attempts": 3}}, "failed", 1),
        ("code not in retry_on", {"action": "control.fail", "on_failure": "retry",
                                  "retry_policy": {**fast, "max_attempts": 3, "retry_on": ["STEP_TIMEOUT"]}},
         "failed", 1),
        ("timeout retried", {"action": "control.sleep", "payload": {"ms": 5_000}, "timeout_ms": 30, "on_failure": "retry",
                             "retry_policy": {**fast, "max_attempts": 2, "retry_on": ["STEP_TIMEOUT"]}}, "failed", 2),
        ("skip never retries", {"action": "control.fail", "on_failure": "skip"}, "skipped", 1),
    ]
    for what, step, status, attempts in cases:
        r = h.run(h.plan(step))
        equal((statuses(r)[0], r.step_results[0].attempts), (status, attempts), f"{what}: {describe(r)}")
    # the next attempt could not start before the deadline: no retry, and no waiting for it
    t0 = time.monotonic()
    r = h.run(h.plan({"action": "control.fail", "on_failure": "retry",
                      "retry_policy": {"max_attempts": 3, "initial_delay_ms": 600_000, "max_delay_ms": 600_000}},
                     timeout_ms=300_000))
    elapsed = time.monotonic() - t0
    equal((code_of(r), r.step_results[0].attempts), ("STEP_FAILED", 1), f"a retry past the deadline: {describe(r)}")
    ensure(elapsed < 5, f"the engine waited {elapsed:.1f} s for a retry that could not start before the deadline")
    return f"{len(cases) + 1} retry decisions"


# --------------------------------------------------------------------------------------------------------- §5.3

@check("§5.3", "a synchronous CPU loop past its timeout is killed: STEP_TIMEOUT well before its own length")
def _(h: Harness) -> str:
    t0 = time.monotonic()
    r = h.run(h.plan({"action": "control.spin", "payload": {"ms": 60_000}, "timeout_ms": 200}))
    elapsed = time.monotonic() - t0
    equal(code_of(r), "STEP_TIMEOUT", describe(r))
    ensure(elapsed < 5, f"a 60 s spin with a 200 ms timeout took {elapsed:.1f} s")
    equal(r.step_results[0].output, None, "output of the timed-out step (a late result is discarded)")
    ensure("step.attempt_timed_out" in h.kinds(r.execution_id), "no step.attempt_timed_out record")
    return f"stopped after {elapsed * 1000:.0f} ms"


@check("§5.3", "synchronous Python never runs in the engine's process")
def _(h: Harness) -> None:
    r = h.run(h.plan({"action": "conformance.pid"}, {"action": "control.spin", "payload": {"ms": 1}}))
    equal(statuses(r), ["succeeded", "succeeded"], describe(r))
    pid = r.step_results[0].output["pid"]
    ensure(pid != os.getpid(), f"the synchronous action ran in the engine's own process ({pid})")


@check("§5.3", "an async action past its timeout is cancelled; a subprocess group is killed")
def _(h: Harness) -> str:
    t0 = time.monotonic()
    r = h.run(h.plan({"action": "control.sleep", "payload": {"ms": 60_000}, "timeout_ms": 100}))
    equal(code_of(r), "STEP_TIMEOUT", f"async sleep: {describe(r)}")
    ensure(time.monotonic() - t0 < 5, "the async step was not stopped at its timeout")
    pidfile = h.workspace / "pids"
    script = f"sleep 30 & echo $$ $! > {pidfile}; wait"
    r = h.run(h.plan({"action": "shell.run", "payload": {"argv": ["sh", "-c", script]}, "timeout_ms": 300}))
    equal(code_of(r), "STEP_TIMEOUT", f"shell.run: {describe(r)}")
    ensure(pidfile.exists(), "the shell never wrote its pids")
    pids = [int(x) for x in pidfile.read_text().split()]
    deadline = time.monotonic() + 3
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.02)
    ensure(not alive, f"processes {alive} of the timed-out step's group are still running")
    return "async cancelled; shell and its child killed"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@check("§5.3", "at the effective deadline every in-flight step is stopped: failure / PLAN_TIMEOUT")
def _(h: Harness) -> str:
    plan = h.plan({"action": "control.sleep", "payload": {"ms": 60_000}},
                  {"action": "control.spin", "payload": {"ms": 60_000}},
                  {"action": "shell.run", "payload": {"argv": ["sleep", "60"]}},
                  {"action": "control.noop", "depends_on": [sid(1)]},
                  timeout_ms=300)
    t0 = time.monotonic()
    r = h.run(plan)
    elapsed = time.monotonic() - t0
    equal((r.status.value, code_of(r)), ("failure", "PLAN_TIMEOUT"), describe(r))
    equal(statuses(r), ["cancelled", "cancelled", "cancelled", "not_run"], "step statuses")
    ensure(elapsed < 5, f"a 300 ms plan took {elapsed:.1f} s")
    return f"stopped after {elapsed * 1000:.0f} ms"


# --------------------------------------------------------------------------------------------------------- §5.4

def _child(h: Harness, *steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return h.plan(*(steps or ({"action": "control.echo", "payload": {"value": "child"}},)), **fields)


@check("§5.4", "execute_plan: the child's PlanResult is the output; new id, parent link, trigger nested, capped deadline")
def _(h: Harness) -> None:
    child = _child(h, timeout_ms=3_600_000)
    parent = h.plan({"action": "execute_plan", "payload": {"plan": child, "environment": dict(ENV)}}, timeout_ms=120_000)
    r = h.run(parent)
    equal(statuses(r), ["succeeded"], describe(r))
    out = r.step_results[0].output
    ensure(isinstance(out, dict) and out.get("status") == "success", f"step output is not the child's PlanResult: {out}")
    equal(out.get("plan_id"), child["id"], "the child result's plan_id")
    cid = out["execution_id"]
    ensure(cid != r.execution_id, "the child reused the parent's execution id")
    row = h.store.get_execution(cid)
    ensure(row is not None, "no execution row for the child")
    equal((row.parent_execution_id, row.parent_step_id), (r.execution_id, sid(1)), "the child's parent link")
    equal(row.context.get("trigger_type"), "nested", "the child's trigger_type")
    equal(h.store.get_result(cid), out, "the child's stored result")

    def deadline(eid: str) -> int:
        acc = [x for x in h.records(eid) if x["kind"] == "admission.accepted"]
        return acc[0]["data"]["effective_deadline_ms"]

    ensure(deadline(cid) <= deadline(r.execution_id),
           "the child's effective deadline is later than its parent's (must be min(parent deadline, now + timeout))")


@check("§5.4", "child failure, or partial without accept_partial, fails the step STEP_FAILED")
def _(h: Harness) -> str:
    failing = _child(h, {"action": "control.fail"})
    partial = _child(h, {"action": "control.noop"}, {"action": "control.fail", "on_failure": "skip"})
    cases = [
        ("a failing child", {"plan": failing}, "failed"),
        ("a partial child", {"plan": partial}, "failed"),
        ("a partial child with accept_partial", {"plan": partial, "accept_partial": True}, "succeeded"),
        ("a child whose environment lacks its requirements", {"plan": _child(h, context_requirements=["OTHER"])},
         "failed"),
    ]
    for what, payload, status in cases:
        r = h.run(h.plan({"action": "execute_plan", "payload": {**payload, "environment": dict(ENV)}}))
        equal(statuses(r), [status], f"{what}: {describe(r)}")
        if status == "failed":
            equal(r.step_results[0].error.error_code.value, "STEP_FAILED", f"{what}: the step's error code")
    # plan_ref: a plan from the registry
    reg = _child(h)
    h.run(reg)
    r = h.run(h.plan({"action": "execute_plan",
                      "payload": {"plan_ref": {"id": reg["id"], "version": 1}, "environment": dict(ENV)}}))
    equal(statuses(r), ["succeeded"], f"plan_ref from the registry: {describe(r)}")
    return f"{len(cases) + 1} nested runs"


def _nest(h: Harness, levels: int) -> dict[str, Any]:
    plan = _child(h)
    for _ in range(levels):
        plan = h.plan({"action": "execute_plan", "payload": {"plan": plan, "environment": dict(ENV)}})
    return plan


@check("§5.4", "nesting 8 deep runs; deeper than 8 is POLICY_DENIED")
def _(h: Harness) -> None:
    ok = h.run(_nest(h, 8))
    equal(ok.status.value, "success", f"8 levels of nesting: {describe(ok)}")
    too_deep = h.run(_nest(h, 9))
    equal(too_deep.status.value, "failure", f"9 levels of nesting: {describe(too_deep)}")
    codes = []
    for row in h.store.list_executions(limit=1000):
        res = h.store.get_result(row.execution_id)
        if res and res.get("error"):
            codes.append(res["error"]["error_code"])
    ensure("POLICY_DENIED" in codes, f"no execution was refused with POLICY_DENIED; codes seen: {sorted(set(codes))}")


@check("§5.4", "the child runs under the parent's principal and envelope, never wider")
def _(h: Harness) -> None:
    from ...governance.envelope import Envelope
    from ...governance.tokens import issue_token

    env = Envelope(workspace=str(h.workspace), denied_paths=("secret/*",))
    eng = h.engine(envelope=env, authorization=True)
    tok = issue_token(h.store, user_id="alice", roles=[], scopes=["control.*", "execute_plan", "fs.*"], ttl_ms=600_000,
                      now=int(time.time() * 1000))
    principal = {"user_id": "alice", "token": tok.token}
    child_ok = _child(h)
    r = h.run(h.plan({"action": "execute_plan", "payload": {"plan": child_ok, "environment": dict(ENV)}}), engine=eng,
              environment=dict(ENV), principal=principal)
    equal(r.status.value, "success", f"a nested run under authorization (the child needs the parent's principal): "
                                     f"{describe(r)}")
    child_bad = _child(h, {"action": "fs.write", "payload": {"path": "secret/x.txt", "content": "x"}})
    r = h.run(h.plan({"action": "execute_plan", "payload": {"plan": child_bad, "environment": dict(ENV)}}), engine=eng,
              environment=dict(ENV), principal=principal)
    equal(statuses(r), ["failed"], f"a child writing a path the parent's envelope denies: {describe(r)}")
    child_doc = r.step_results[0].error.details.get("child_result", {})
    equal((child_doc.get("error") or {}).get("error_code"), "POLICY_DENIED", "the child's error code")
    ensure(not (h.workspace / "secret").exists(), "the child wrote under a denied path")


# --------------------------------------------------------------------------------------------------------- §5.5

@check("§5.5", "success iff all succeeded; partial; failure on halt or when no step succeeded")
def _(h: Harness) -> None:
    cases = [
        ("all succeed", [{"action": "control.noop"}, {"action": "control.noop"}], "success"),
        ("one skipped, one succeeded", [{"action": "control.noop"}, {"action": "control.fail", "on_failure": "skip"}],
         "partial"),
        ("one succeeded, a dependent not_run", [{"action": "control.noop"},
                                                {"action": "control.fail", "on_failure": "skip"},
                                                {"action": "control.noop", "depends_on": [sid(2)]}], "partial"),
        ("every step skipped", [{"action": "control.fail", "on_failure": "skip"},
                                {"action": "control.fail", "on_failure": "skip"}], "failure"),
        ("a halting failure after a success", [{"action": "control.noop"},
                                               {"action": "control.fail", "depends_on": [sid(1)]}], "failure"),
    ]
    for what, steps, status in cases:
        r = h.run(h.plan(*steps))
        equal(r.status.value, status, f"{what}: {describe(r)}")
    r = h.run(h.plan({"action": "control.fail", "on_failure": "skip"}, {"action": "control.fail", "on_failure": "skip"}))
    ensure(r.error is not None, "a failure in which every step was skipped has no error")

