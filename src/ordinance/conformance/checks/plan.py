"""§1 plans, §1.1 steps, §1.2 retry policies, §1.3 bindings, §1.4 validation results, §2 contexts."""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

from ..actions import json_type
from ..harness import ENV, Harness, code_of, describe, now_ms, sid, statuses
from ..registry import Violation, check, ensure, equal

_PLAN_ID = "11111111-1111-4111-8111-111111111111"


def _base(n_steps: int = 2) -> dict[str, Any]:
    steps = [{"id": sid(i), "action": "control.noop"} for i in range(1, n_steps + 1)]
    return {"id": _PLAN_ID, "version": 1, "name": "p", "created_at": 1, "steps": steps,
            "context_requirements": ["TARGET"]}


def _violations(doc: Any) -> list[tuple[str, str]]:
    from ...contract.validate import validate_plan

    return [(v.path, v.rule) for v in validate_plan(doc)]


Mut = Callable[[dict[str, Any]], Any]


def _cases(cases: list[tuple[str, Mut, list[tuple[str, str]]]], n_steps: int = 2) -> str:
    """Each case mutates a valid plan and must give exactly the expected (path, rule) list."""
    for what, mutate, expected in cases:
        doc = _base(n_steps)
        mutate(doc)
        equal(_violations(doc), sorted(expected), f"violations of a plan with {what}")
    return f"{len(cases)} single-fault plans, each reported exactly"


def _set(path: str, value: Any) -> Mut:
    def m(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        cur: Any = doc
        for p in parents:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        if isinstance(cur, list):
            cur[int(last)] = value
        else:
            cur[last] = value
    return m


def _del(path: str) -> Mut:
    def m(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        cur: Any = doc
        for p in parents:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        del cur[last]
    return m


# ----------------------------------------------------------------------------------------------------------- §1

@check("§1", "a valid plan has no violations; defaults are timeout 3 600 000, max_parallel 8, compensate true")
def _(h: Harness) -> None:
    from ...contract.validate import parse_plan

    doc = _base()
    equal(_violations(doc), [], "violations of a valid plan")
    plan = parse_plan(doc)
    equal(plan.timeout_ms, 3_600_000, "default timeout_ms")
    equal(plan.max_parallel, 8, "default max_parallel")
    equal(plan.compensate_on_failure, True, "default compensate_on_failure")
    full = _base()
    full.update(timeout_ms=86_400_000, max_parallel=256, compensate_on_failure=False, description="d" * 4000,
                metadata={"anything": {"goes": [1, None]}})
    equal(_violations(full), [], "violations of a plan with every optional field at its bound")


@check("§1", "each required field: missing or wrong type breaks its own rule at its own path")
def _(h: Harness) -> str:
    rules = {"id": "R-PLAN-ID", "version": "R-PLAN-VERSION", "name": "R-PLAN-NAME", "created_at": "R-PLAN-CREATED",
             "steps": "R-PLAN-STEPS", "context_requirements": "R-PLAN-REQS"}
    cases: list[tuple[str, Mut, list[tuple[str, str]]]] = []
    for field, rule in rules.items():
        cases.append((f"no {field}", _del(field), [(f"/{field}", rule)]))
        cases.append((f"{field} = null", _set(field, None), [(f"/{field}", rule)]))
    cases += [
        ("version true", _set("version", True), [("/version", "R-PLAN-VERSION")]),
        ("version 3.0", _set("version", 3.0), [("/version", "R-PLAN-VERSION")]),
        ("version \"1\"", _set("version", "1"), [("/version", "R-PLAN-VERSION")]),
        ("version 0", _set("version", 0), [("/version", "R-PLAN-VERSION")]),
        ("an uppercase id", _set("id", "AAAAAAAA-1111-4111-8111-111111111111"), [("/id", "R-PLAN-ID")]),
        ("a UUID v1 id", _set("id", "11111111-1111-1111-8111-111111111111"), [("/id", "R-PLAN-ID")]),
        ("an empty name", _set("name", ""), [("/name", "R-PLAN-NAME")]),
        ("a 201-character name", _set("name", "n" * 201), [("/name", "R-PLAN-NAME")]),
        ("a control character in the name", _set("name", "a\nb"), [("/name", "R-PLAN-NAME")]),
        ("created_at 0", _set("created_at", 0), [("/created_at", "R-PLAN-CREATED")]),
        ("created_at 2^53", _set("created_at", 2**53), [("/created_at", "R-PLAN-CREATED")]),
        ("no steps", _set("steps", []), [("/steps", "R-PLAN-STEPS")]),
        ("empty context_requirements", _set("context_requirements", []), [("/context_requirements", "R-PLAN-REQS")]),
        ("a bad requirement name", _set("context_requirements", ["1BAD"]), [("/context_requirements/0", "R-PLAN-REQS")]),
    ]
    return _cases(cases)


@check("§1", "optional fields: bounds, types, and R-NO-EXTRA everywhere except payload/metadata/environment")
def _(h: Harness) -> str:
    def extra_in_payload(doc: dict[str, Any]) -> None:
        doc["steps"][0]["payload"] = {"anything": 1}
        doc["metadata"] = {"free": {"form": True}}

    cases: list[tuple[str, Mut, list[tuple[str, str]]]] = [
        ("timeout_ms 0", _set("timeout_ms", 0), [("/timeout_ms", "R-PLAN-TIMEOUT")]),
        ("timeout_ms 86 400 001", _set("timeout_ms", 86_400_001), [("/timeout_ms", "R-PLAN-TIMEOUT")]),
        ("max_parallel 0", _set("max_parallel", 0), [("/max_parallel", "R-PLAN-PARALLEL")]),
        ("max_parallel 257", _set("max_parallel", 257), [("/max_parallel", "R-PLAN-PARALLEL")]),
        ("max_parallel 8.0", _set("max_parallel", 8.0), [("/max_parallel", "R-PLAN-PARALLEL")]),
        ("compensate_on_failure 1", _set("compensate_on_failure", 1), [("/compensate_on_failure", "R-PLAN-COMPENSATE")]),
        ("a 4001-character description", _set("description", "d" * 4001), [("/description", "R-PLAN-DESCRIPTION")]),
        ("metadata a list", _set("metadata", []), [("/metadata", "R-PLAN-METADATA")]),
        ("an unknown top-level field", _set("owner", "me"), [("/owner", "R-NO-EXTRA")]),
        ("an unknown step field", _set("steps/0/owner", "me"), [("/steps/0/owner", "R-NO-EXTRA")]),
        ("extra fields inside payload and metadata", extra_in_payload, []),
    ]
    return _cases(cases)


# --------------------------------------------------------------------------------------------------------- §1.1

@check("§1.1", "step fields: id, uniqueness, action pattern, payload, depends_on, on_failure, timeout, compensation")
def _(h: Harness) -> str:
    def dup_ids(doc: dict[str, Any]) -> None:
        doc["steps"][1]["id"] = sid(1)

    def big_payload(doc: dict[str, Any]) -> None:
        doc["steps"][0]["payload"] = {"pad": "x" * (1024 * 1024)}

    def cycle(doc: dict[str, Any]) -> None:
        doc["steps"][0]["depends_on"] = [sid(2)]
        doc["steps"][1]["depends_on"] = [sid(3)]
        doc["steps"][2]["depends_on"] = [sid(1)]

    cases: list[tuple[str, Mut, list[tuple[str, str]]]] = [
        ("a step id that is not a UUID v4", _set("steps/0/id", "step-1"), [("/steps/0/id", "R-STEP-ID")]),
        ("an uppercase step id", _set("steps/0/id", "0000000A-0000-4000-8000-000000000001"), [("/steps/0/id", "R-STEP-ID")]),
        ("a repeated step id", dup_ids, [("/steps/1/id", "R-STEP-UNIQUE")]),
        ("action with a capital", _set("steps/0/action", "Control.noop"), [("/steps/0/action", "R-STEP-ACTION")]),
        ("action with a trailing newline", _set("steps/0/action", "control.noop\n"), [("/steps/0/action", "R-STEP-ACTION")]),
        ("action ending in a dot", _set("steps/0/action", "control."), [("/steps/0/action", "R-STEP-ACTION")]),
        ("payload a list", _set("steps/0/payload", []), [("/steps/0/payload", "R-STEP-PAYLOAD")]),
        ("a payload over 1 MiB", big_payload, [("/steps/0/payload", "R-STEP-PAYLOAD")]),
        ("a self-dependency", _set("steps/0/depends_on", [sid(1)]), [("/steps/0/depends_on/0", "R-STEP-DEPS")]),
        ("a dependency on no step", _set("steps/0/depends_on", [sid(9)]), [("/steps/0/depends_on/0", "R-STEP-DEPS")]),
        ("a repeated dependency", _set("steps/1/depends_on", [sid(1), sid(1)]), [("/steps/1/depends_on/1", "R-STEP-DEPS")]),
        ("on_failure \"ignore\"", _set("steps/0/on_failure", "ignore"), [("/steps/0/on_failure", "R-STEP-ONFAIL")]),
        ("retry_policy without on_failure retry", _set("steps/0/retry_policy", {"max_attempts": 2}),
         [("/steps/0/retry_policy", "R-STEP-RETRY")]),
        ("a step timeout over the plan's", lambda d: (d.update(timeout_ms=1000), d["steps"][0].update(timeout_ms=1001)),
         [("/steps/0/timeout_ms", "R-STEP-TIMEOUT")]),
        ("a step timeout of 0", _set("steps/0/timeout_ms", 0), [("/steps/0/timeout_ms", "R-STEP-TIMEOUT")]),
        ("a compensation with an unknown field", _set("steps/0/compensation", {"action": "control.noop", "x": 1}),
         [("/steps/0/compensation/x", "R-NO-EXTRA")]),
        ("a compensation without action", _set("steps/0/compensation", {"payload": {}}),
         [("/steps/0/compensation/action", "R-STEP-COMP")]),
        ("an empty step name", _set("steps/0/name", ""), [("/steps/0/name", "R-STEP-NAME")]),
    ]
    out = _cases(cases)
    doc = _base(3)
    cycle(doc)
    got = _violations(doc)
    equal([r for _, r in got], ["R-PLAN-ACYCLIC"], "violations of a plan with a 3-step cycle")
    from ...contract.validate import validate_plan

    msg = [v.message for v in validate_plan(doc)][0]
    ensure(all(s in msg for s in (sid(1), sid(2), sid(3))), f"the cycle violation does not name the cycle: {msg}")
    order = [msg.find(sid(1)), msg.find(sid(2)), msg.find(sid(3))]
    ensure(order == sorted(order), f"the cycle is not named in order (1 → 2 → 3 → 1): {msg}")
    return out + "; a cycle is named in order"


@check("§1.1", "step defaults: payload {}, depends_on [], on_failure halt, timeout min(30 000, plan timeout)")
def _(h: Harness) -> None:
    from ...contract.validate import parse_plan

    plan = parse_plan(_base())
    step = plan.steps[0]
    equal(dict(step.payload), {}, "default payload")
    equal(list(step.depends_on), [], "default depends_on")
    equal(step.on_failure.value, "halt", "default on_failure")
    equal(plan.step_timeout_ms(step), 30_000, "default step timeout")
    small = _base()
    small["timeout_ms"] = 5_000
    p2 = parse_plan(small)
    equal(p2.step_timeout_ms(p2.steps[0]), 5_000, "default step timeout under a 5 000 ms plan")
    # the default halts: a failing step without on_failure ends the plan, its dependent never runs
    r = h.run(h.plan({"action": "control.fail"}, {"action": "control.noop"}, max_parallel=1))
    equal(statuses(r), ["failed", "not_run"], f"default on_failure (halt): {describe(r)}")
    equal(r.step_results[0].attempts, 1, "attempts of a failing step without retry")


# --------------------------------------------------------------------------------------------------------- §1.2

def _expected_delays(initial: int, mult: float, cap: int, max_attempts: int) -> list[int]:
    return [min(initial * mult ** (n - 2), cap) for n in range(2, max_attempts + 1)]


@check("§1.2", "journaled retry delays equal min(initial × m^(n−2), max), and are waited")
def _(h: Harness) -> str:
    policy = {"max_attempts": 5, "initial_delay_ms": 10, "backoff_multiplier": 3, "max_delay_ms": 40}
    plan = h.plan({"action": "control.fail", "payload": {"fail_attempts": 4}, "on_failure": "retry",
                   "retry_policy": policy})
    r = h.run(plan)
    equal(statuses(r), ["succeeded"], f"a step that fails 4 times with 5 attempts: {describe(r)}")
    equal(r.step_results[0].attempts, 5, "attempts")
    recs = h.records(r.execution_id)
    sched = [x for x in recs if x["kind"] == "step.retry_scheduled"]
    delays = [x["data"].get("delay_ms") for x in sched]
    expected = _expected_delays(10, 3, 40, 5)
    equal(delays, expected, "journaled retry delays (ms)")
    equal([x["data"].get("next_attempt") for x in sched], [2, 3, 4, 5], "next_attempt of the retry records")
    starts = [x for x in recs if x["kind"] == "step.attempt_started"]
    for s, nxt, d in zip(sched, starts[1:], expected):
        waited = nxt["at"] - s["at"]
        ensure(waited >= d - 1, f"attempt {nxt.get('attempt')} started {waited} ms after its retry was scheduled, "
                                f"before its {d} ms delay")
    # no jitter: the same policy gives the same schedule
    r2 = h.run(plan)
    delays2 = [x["data"].get("delay_ms") for x in h.records(r2.execution_id) if x["kind"] == "step.retry_scheduled"]
    equal(delays2, delays, "retry delays of a second run (no jitter)")
    return f"delays {delays} ms"


@check("§1.2", "RetryPolicy bounds and defaults (3, 200, 2.0, 10 000, [STEP_FAILED, STEP_TIMEOUT])")
def _(h: Harness) -> str:
    from ...contract.validate import parse_plan

    doc = _base()
    doc["steps"][0]["on_failure"] = "retry"
    plan = parse_plan(doc)
    pol = plan.steps[0].effective_retry_policy
    ensure(pol is not None, "on_failure retry without retry_policy has no default policy")
    equal((pol.max_attempts, pol.initial_delay_ms, float(pol.backoff_multiplier), pol.max_delay_ms, tuple(pol.retry_on)),
          (3, 200, 2.0, 10_000, ("STEP_FAILED", "STEP_TIMEOUT")), "the default retry policy")
    bad = [
        {"max_attempts": 0}, {"max_attempts": 101}, {"max_attempts": 2.0}, {"initial_delay_ms": -1},
        {"initial_delay_ms": 3_600_001}, {"backoff_multiplier": 0.5}, {"backoff_multiplier": 10.5},
        {"max_delay_ms": 3_600_001}, {"initial_delay_ms": 500, "max_delay_ms": 400}, {"initial_delay_ms": 20_000},
        {"retry_on": []}, {"retry_on": ["PLAN_TIMEOUT"]}, {"retry_on": ["STEP_FAILED", "STEP_FAILED"]},
        {"jitter": True},
    ]
    for policy in bad:
        d = _base()
        d["steps"][0].update(on_failure="retry", retry_policy=policy)
        got = _violations(d)
        ensure(got and all(p.startswith("/steps/0/retry_policy") for p, _ in got)
               and {r for _, r in got} <= {"R-STEP-RETRY", "R-NO-EXTRA"},
               f"retry_policy {policy}: expected R-STEP-RETRY under /steps/0/retry_policy, got {got}")
    good = {"max_attempts": 100, "initial_delay_ms": 0, "backoff_multiplier": 10.0, "max_delay_ms": 3_600_000,
            "retry_on": ["STEP_TIMEOUT"]}
    d = _base()
    d["steps"][0].update(on_failure="retry", retry_policy=good)
    equal(_violations(d), [], "violations of a retry policy at its bounds")
    return f"{len(bad)} bad policies refused"


# --------------------------------------------------------------------------------------------------------- §1.3

@check("§1.3", "a bound value is written into a copy of the payload, creating objects on the way")
def _(h: Harness) -> None:
    plan = h.plan(
        {"action": "control.echo", "payload": {"value": {"x": 42, "list": [1, 2]}}},
        {"action": "control.noop", "depends_on": [sid(1)]},
        {"action": "control.echo", "payload": {"value": {"keep": True}}, "depends_on": [sid(2)],
         "inputs": {"/value/a/b": {"step": sid(1), "pointer": "/value/x"},
                    "/value/whole": {"step": sid(1), "pointer": ""}}},
    )
    original = copy.deepcopy(plan)
    r = h.run(plan)
    equal(statuses(r), ["succeeded"] * 3, f"a plan with a transitive binding: {describe(r)}")
    equal(r.step_results[2].output,
          {"value": {"keep": True, "a": {"b": 42}, "whole": {"value": {"x": 42, "list": [1, 2]}}}},
          "output of the bound step")
    equal(plan, original, "the plan document after the run (bindings must write into a copy)")


@check("§1.3", "an unresolvable pointer, or one crossing an array or scalar, fails the step INVALID_PAYLOAD")
def _(h: Harness) -> str:
    cases = {
        "a source pointer that does not resolve": ({"value": {}}, "/value/y", "/value/missing"),
        "a target pointer crossing an array": ({"value": [1]}, "/value/x", "/value/0/z"),
        "a target pointer crossing a scalar": ({"value": 5}, "/value/x", "/value/z"),
    }
    for what, (payload, src, target) in cases.items():
        plan = h.plan({"action": "control.echo", "payload": {"value": {"x": 1}}},
                      {"action": "control.echo", "payload": payload, "depends_on": [sid(1)],
                       "inputs": {target: {"step": sid(1), "pointer": src}}})
        r = h.run(plan)
        equal(statuses(r), ["succeeded", "failed"], f"{what}: {describe(r)}")
        err = r.step_results[1].error
        equal(err.error_code.value if err else None, "INVALID_PAYLOAD", f"{what}: the step's error code")
    return f"{len(cases)} bad bindings"


@check("§1.3", "validation: a source that is not a transitive dependency is R-BIND-REF; a bad pointer R-STEP-INPUTS")
def _(h: Harness) -> None:
    def sideways(doc: dict[str, Any]) -> None:
        doc["steps"][1]["inputs"] = {"/v": {"step": sid(1), "pointer": "/x"}}  # step 2 does not depend on step 1

    def forward(doc: dict[str, Any]) -> None:
        doc["steps"][1]["depends_on"] = [sid(1)]
        doc["steps"][0]["inputs"] = {"/v": {"step": sid(2), "pointer": ""}}

    def self_ref(doc: dict[str, Any]) -> None:
        doc["steps"][0]["inputs"] = {"/v": {"step": sid(1), "pointer": ""}}

    def bad_ptr(doc: dict[str, Any]) -> None:
        doc["steps"][1]["depends_on"] = [sid(1)]
        doc["steps"][1]["inputs"] = {"/v": {"step": sid(1), "pointer": "no-slash"}}

    def transitive(doc: dict[str, Any]) -> None:
        doc["steps"][1]["depends_on"] = [sid(1)]
        doc["steps"][2]["depends_on"] = [sid(2)]
        doc["steps"][2]["inputs"] = {"/v": {"step": sid(1), "pointer": ""}}

    _cases([
        ("a sideways binding", sideways, [("/steps/1/inputs/~1v/step", "R-BIND-REF")]),
        ("a forward binding", forward, [("/steps/0/inputs/~1v/step", "R-BIND-REF")]),
        ("a binding to the step itself", self_ref, [("/steps/0/inputs/~1v/step", "R-BIND-REF")]),
        ("a binding pointer without a leading slash", bad_ptr, [("/steps/1/inputs/~1v/pointer", "R-STEP-INPUTS")]),
        ("a binding to a transitive dependency", transitive, []),
    ], n_steps=3)


# --------------------------------------------------------------------------------------------------------- §1.4

_GARBAGE: list[Any] = [None, 0, 1.5, True, "", "{", b"", b"\x00\xff", [], {}, {"steps": None},
                       {"steps": [None, 1, "x", {"depends_on": {"a": 1}}]}, {"id": {"nested": [1, 2]}},
                       {"steps": [{"inputs": {"": {"step": 1}}}]}, object(), {1, 2}, (1, 2), {"a": float("nan")},
                       {1: "int key"}, bytearray(b"{}"), {"steps": [{"retry_policy": {"retry_on": "x"}}]}]


@check("§1.4", "validation never raises, on any input, and returns {path, rule, message} items")
def _(h: Harness) -> str:
    from ...contract.validate import validate_context, validate_plan

    for g in _GARBAGE:
        for fn, args in ((validate_plan, (g,)), (validate_context, (g, _base())), (validate_context, (ENV, g))):
            try:
                out = fn(*args)
            except Exception as exc:  # noqa: BLE001
                raise Violation(f"{fn.__name__}({g!r:.60}) raised {type(exc).__name__}: {exc}") from None
            ensure(isinstance(out, list), f"{fn.__name__}({g!r:.60}) returned {type(out).__name__}, not a list")
            for v in out:
                d = v.to_dict()
                ensure(set(d) == {"path", "rule", "message"} and all(isinstance(x, str) for x in d.values()),
                       f"a violation is not {{path, rule, message}} strings: {d}")
                ensure(d["path"] == "" or d["path"].startswith("/"), f"path {d['path']!r} is not a JSON Pointer")
    return f"{len(_GARBAGE)} garbage inputs × plan and context validators"


@check("§1.4", "every violation is reported, sorted by path then rule")
def _(h: Harness) -> None:
    doc = _base(3)
    doc.update(version=0, name="", extra=1, timeout_ms=0)
    doc["steps"][2].update(action="BAD", on_failure="never", id="nope")
    got = _violations(doc)
    expected = [("/extra", "R-NO-EXTRA"), ("/name", "R-PLAN-NAME"), ("/steps/2/action", "R-STEP-ACTION"),
                ("/steps/2/id", "R-STEP-ID"), ("/steps/2/on_failure", "R-STEP-ONFAIL"),
                ("/timeout_ms", "R-PLAN-TIMEOUT"), ("/version", "R-PLAN-VERSION")]
    equal(got, expected, "violations of a plan with seven faults")
    equal(got, sorted(got), "order of the violations")


@check("R-VALIDATE-DET", "the same input gives the same list: repeated, reordered keys, bytes, text, document")
def _(h: Harness) -> None:
    from ...contract.validate import validate_context, validate_plan

    doc = _base(4)
    doc.update(version=-1, extra={"a": 1}, context_requirements=["ok", "ok", "9bad"])
    doc["steps"][0]["depends_on"] = [sid(2)]
    doc["steps"][1]["depends_on"] = [sid(1)]
    doc["steps"][3].update(id=sid(3), inputs={"/x": {"step": sid(9), "pointer": "/y"}}, on_failure="skip",
                           retry_policy={})
    first = [v.to_dict() for v in validate_plan(doc)]
    ensure(len(first) >= 6, f"expected many violations, got {first}")
    variants = {
        "again": doc,
        "keys reversed": json.loads(json.dumps(doc), object_pairs_hook=lambda p: dict(reversed(p))),
        "bytes": json.dumps(doc).encode(),
        "indented text": json.dumps(doc, indent=2, sort_keys=True),
    }
    for what, v in variants.items():
        equal([x.to_dict() for x in validate_plan(v)], first, f"violations ({what})")
    ctx = {"execution_id": "X", "plan_id": "nope", "started_at": 0, "deadline_ms": -1, "environment": [], "y": 1}
    c1 = [v.to_dict() for v in validate_context(ctx, doc)]
    c2 = [v.to_dict() for v in validate_context(json.dumps(ctx, indent=1).encode(), doc)]
    equal(c2, c1, "context violations (bytes vs document)")


# ----------------------------------------------------------------------------------------------------------- §2

def _ctx(**over: Any) -> dict[str, Any]:
    now = now_ms()
    ctx = {"execution_id": "22222222-2222-4222-8222-222222222222", "plan_id": _PLAN_ID, "started_at": now,
           "deadline_ms": now + 3_600_000, "environment": {"TARGET": "x"}}
    ctx.update(over)
    return ctx


@check("§2", "context rules: ids, plan id, started_at, deadline, environment, principal, trigger_type")
def _(h: Harness) -> str:
    from ...contract.validate import validate_context

    now = now_ms()
    cases: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
        ("a valid context", _ctx(), []),
        ("every optional field", _ctx(principal={"user_id": "u", "token": "t"}, trigger_type="schedule"), []),
        ("an uppercase execution id", _ctx(execution_id="22222222-2222-4222-8222-22222222222A"),
         [("/execution_id", "R-CTX-ID")]),
        ("another plan's id", _ctx(plan_id="33333333-3333-4333-8333-333333333333"), [("/plan_id", "R-CTX-PLAN")]),
        ("started_at 0", _ctx(started_at=0, deadline_ms=3_600_001), [("/started_at", "R-CTX-STARTED")]),
        ("deadline before start", _ctx(started_at=now, deadline_ms=now - 1), [("/deadline_ms", "R-CTX-DEADLINE")]),
        ("deadline shorter than the plan timeout", _ctx(started_at=now, deadline_ms=now + 3_599_999),
         [("/deadline_ms", "R-CTX-DEADLINE")]),
        ("deadline a float", _ctx(started_at=now, deadline_ms=float(now + 3_600_000)), [("/deadline_ms", "R-CTX-DEADLINE")]),
        ("environment a list", _ctx(environment=[]), [("/environment", "R-CTX-ENV")]),
        ("a missing requirement", _ctx(environment={"OTHER": 1}), [("/environment/TARGET", "R-CTX-REQS")]),
        ("trigger_type cron", _ctx(trigger_type="cron"), [("/trigger_type", "R-CTX-TRIGGER")]),
        ("a principal with an extra field", _ctx(principal={"user_id": "u", "token": "t", "role": "x"}),
         [("/principal/role", "R-NO-EXTRA")]),
        ("an unknown field", _ctx(priority=1), [("/priority", "R-NO-EXTRA")]),
    ]
    for what, ctx, expected in cases:
        got = [(v.path, v.rule) for v in validate_context(ctx, _base())]
        equal(got, sorted(expected), f"violations of {what}")
    return f"{len(cases)} contexts"


@check("§2", "engine: missing keys are CONTEXT_MISSING with details.missing; trigger defaults to manual")
def _(h: Harness) -> None:
    from ...contract.validate import parse_context

    plan = h.plan({"action": "control.noop"}, context_requirements=["TARGET", "REGION", "ZONE"])
    r = h.run(plan, environment={"TARGET": "x"})
    equal(code_of(r), "CONTEXT_MISSING", f"a context without REGION and ZONE: {describe(r)}")
    equal(sorted(r.error.details.get("missing", [])), ["REGION", "ZONE"], "details.missing")
    equal(r.steps_executed, 0, "steps_executed")
    bad = h.context(plan, environment={"TARGET": 1, "REGION": 2, "ZONE": 3}, plan_id=h.plan()["id"])
    r = h.run(plan, bad)
    equal(code_of(r), "CONTEXT_INVALID", f"a context for another plan: {describe(r)}")
    ctx = parse_context(_ctx(), _base())
    equal(ctx.trigger_type.value, "manual", "default trigger_type")


@check("§2", "the effective deadline is min(deadline_ms, started_at + plan.timeout_ms)")
def _(h: Harness) -> str:
    plan = h.plan({"action": "control.noop"}, timeout_ms=60_000)
    ctx = h.context(plan)
    ctx["deadline_ms"] = ctx["started_at"] + 7_200_000
    r = h.run(plan, ctx)
    equal(r.status.value, "success", describe(r))
    acc = [x for x in h.records(r.execution_id) if x["kind"] == "admission.accepted"]
    ensure(acc, "no admission.accepted record")
    got = acc[0]["data"].get("effective_deadline_ms")
    equal(got, ctx["started_at"] + 60_000, "effective deadline (journaled at admission)")
    # and it is enforced: a plan of 150 ms with a far context deadline times out at 150 ms
    slow = h.plan({"action": "control.sleep", "payload": {"ms": 10_000}}, timeout_ms=150)
    sctx = h.context(slow)
    sctx["deadline_ms"] = sctx["started_at"] + 3_600_000
    r = h.run(slow, sctx)
    equal(code_of(r), "PLAN_TIMEOUT", f"a 150 ms plan with a one-hour context deadline: {describe(r)}")
    ensure(r.duration_ms < 5_000, f"the 150 ms plan ran {r.duration_ms} ms")
    return f"PLAN_TIMEOUT after {r.duration_ms} ms"


@check("R-CTX-OPAQUE", "the environment reaches actions unchanged and uncoerced; the caller's dict is untouched")
def _(h: Harness) -> None:
    env = {"TARGET": "x", "N": "007", "F": 1.0, "I": 1, "B": False, "Z": None, "nested": {"a": [1, None, "2"]},
           "1 odd key": "ok"}
    before = copy.deepcopy(env)
    r = h.run(h.plan({"action": "conformance.env_view"}), environment=env)
    equal(r.status.value, "success", describe(r))
    out = r.step_results[0].output
    equal(out["env"], before, "the environment as the action saw it")
    equal(out["types"], {k: json_type(v) for k, v in before.items()}, "JSON types of the environment values")
    equal(env, before, "the caller's environment after the run")


@check("R-CTX-OPAQUE", "actions get a read-only view: a change by one step reaches neither the next step nor the caller")
def _(h: Harness) -> str:
    env = {"TARGET": "x", "cfg": {"k": "original"}}
    before = copy.deepcopy(env)
    plan = h.plan({"action": "conformance.env_poke", "payload": {"key": "cfg"}},
                  {"action": "conformance.env_view", "depends_on": [sid(1)]})
    r = h.run(plan, environment=env)
    equal(statuses(r), ["succeeded", "succeeded"], describe(r))
    poke = r.step_results[0].output
    seen = r.step_results[1].output["env"]
    problems = []
    if poke.get("top_level_mutable"):
        problems.append("an action could add a key to the environment view")
    if seen != before:
        problems.append(f"the next step saw a changed environment {seen}")
    if env != before:
        problems.append(f"the caller's environment dict was changed to {env}")
    if poke.get("nested_mutable") and not problems:
        problems.append("an action could change a nested environment value")
    ensure(not problems, "; ".join(problems) + " (the view is only shallowly read-only)")
    return "top level and nested values are read-only"
