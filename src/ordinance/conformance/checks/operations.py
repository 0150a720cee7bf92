"""§7.1 receipts, §7.2 idempotency, §7.3 compensation types, §7.4 compensating a failure."""

from __future__ import annotations

import uuid

from ..harness import Harness, code_of, describe, sid, statuses
from ..registry import check, ensure, equal

_RECEIPT_FIELDS = {"operation_id", "execution_id", "step_id", "attempt", "timestamp", "action", "idempotency_key",
                   "pre_state_hash", "post_state_hash", "compensation_type", "compensation_command",
                   "compensation_verified"}


@check("§7.1", "every attempt that reaches an action leaves a receipt with the contract's fields")
def _(h: Harness) -> str:
    from ...contract.canonical import digest

    h.write_file("f.txt", "old")
    plan = h.plan({"action": "fs.write", "payload": {"path": "f.txt", "content": "new"}},
                  {"action": "control.fail", "payload": {"fail_attempts": 2}, "on_failure": "retry",
                   "retry_policy": {"initial_delay_ms": 0, "max_attempts": 3}},
                  {"action": "control.echo", "payload": {"value": 1}})
    r = h.run(plan)
    equal(statuses(r), ["succeeded"] * 3, describe(r))
    for s in r.step_results:
        rc = s.receipt.model_dump(mode="json") if s.receipt else None
        ensure(rc is not None, f"step {s.step_id} has no receipt")
        missing = _RECEIPT_FIELDS - set(rc)
        ensure(not missing, f"receipt of {s.step_id} lacks {sorted(missing)}")
        equal((rc["execution_id"], rc["step_id"], rc["attempt"]), (r.execution_id, s.step_id, s.attempts),
              "receipt execution, step and attempt")
    w = r.step_results[0].receipt
    equal(w.idempotency_key, digest({"plan_id": plan["id"], "step_id": sid(1), "action": "fs.write",
                                     "payload": {"path": "f.txt", "content": "new"}}),
          "idempotency_key = digest({plan_id, step_id, action, payload})")
    ensure(w.pre_state_hash and w.post_state_hash and w.pre_state_hash != w.post_state_hash,
           f"fs.write receipt: pre {w.pre_state_hash} / post {w.post_state_hash} (the file changed)")
    stored = [x for x in h.store.receipts(r.execution_id) if x["step_id"] == sid(2)]
    equal(sorted(x["attempt"] for x in stored), [1, 2, 3], "stored receipts of a step with 3 attempts")
    ids = {x["operation_id"] for x in h.store.receipts(r.execution_id)}
    equal(len(ids), 5, "distinct operation ids (one per attempt)")
    return "5 attempts, 5 receipts"


@check("§7.1", "pre/post state hashes follow the state: same content, same hash; restored state, pre hash again")
def _(h: Harness) -> None:
    h.write_file("g.txt", "A")
    r1 = h.run(h.plan({"action": "fs.write", "payload": {"path": "g.txt", "content": "B"}}))
    r2 = h.run(h.plan({"action": "fs.write", "payload": {"path": "g.txt", "content": "A"}}))
    a, b = r1.step_results[0].receipt, r2.step_results[0].receipt
    equal(a.post_state_hash, b.pre_state_hash, "post-state of writing B = pre-state of the next write")
    equal(b.post_state_hash, a.pre_state_hash, "writing A back gives the original state hash")


@check("§7.2", "an idempotent action whose key has a succeeded receipt is replayed, not run again")
def _(h: Harness) -> str:
    from ..actions import counter_value

    key = str(uuid.uuid4())
    plan = h.plan({"action": "conformance.counter", "payload": {"key": key}})
    first = h.run(plan)
    second = h.run(plan)
    equal((first.status.value, second.status.value), ("success", "success"), f"{describe(first)} / {describe(second)}")
    equal(counter_value(key), 1, "times the idempotent action ran over two executions of the same step")
    equal(second.step_results[0].output, first.step_results[0].output, "output of the replayed step")
    rc = second.step_results[0].receipt
    equal(rc.status if rc else None, "replayed", "receipt status of the replay")
    ensure("step.attempt_replayed" in h.kinds(second.execution_id), "no step.attempt_replayed record")
    h.run(h.plan({"action": "conformance.counter", "payload": {"key": key}}))
    equal(counter_value(key), 2, "a different plan id gives a different key and runs the action")

    return "ran once, replayed once"


@check("§7.3", "the compensation types are exactly the contract's nine; built-ins declare theirs")
def _(h: Harness) -> None:
    from ...contract.models import CompensationType

    equal({c.value for c in CompensationType},
          {"none", "git_checkout", "git_reset_head", "git_reset_soft", "git_reset_hard", "git_clean", "fs_delete",
           "fs_restore", "custom"}, "compensation types")
    h.write_file("e.txt", "x")
    r = h.run(h.plan({"action": "fs.write", "payload": {"path": "w.txt", "content": "x"}},
                     {"action": "fs.mkdir", "payload": {"path": "d"}},
                     {"action": "fs.delete", "payload": {"path": "e.txt"}},
                     {"action": "control.noop"},
                     {"action": "control.noop", "compensation": {"action": "control.echo", "payload": {"value": 1}}}))
    equal(statuses(r), ["succeeded"] * 5, describe(r))
    equal([s.receipt.compensation_type.value for s in r.step_results],
          ["fs_restore", "fs_delete", "fs_restore", "none", "custom"], "compensation_type of each receipt")
    ensure(r.step_results[4].receipt.compensation_command, "a custom compensation has no compensation_command")


@check("§7.4", "on failure, succeeded steps are compensated in reverse completion order and verified")
def _(h: Harness) -> str:
    h.write_file("existing.txt", "original")
    plan = h.plan({"action": "fs.write", "payload": {"path": "existing.txt", "content": "changed"}},
                  {"action": "fs.write", "payload": {"path": "new.txt", "content": "new"}, "depends_on": [sid(1)]},
                  {"action": "fs.mkdir", "payload": {"path": "made/deep"}, "depends_on": [sid(2)]},
                  {"action": "control.fail", "depends_on": [sid(3)]})
    r = h.run(plan)
    equal(code_of(r), "STEP_FAILED", describe(r))
    equal(statuses(r), ["compensated", "compensated", "compensated", "failed"], "statuses after compensation")
    equal([s.compensation_status.value for s in r.step_results[:3]], ["verified"] * 3, "compensation_status")
    equal(h.file("existing.txt").read_text(), "original", "existing.txt after compensation")
    ensure(not h.file("new.txt").exists() and not h.file("made").exists(), "created files or directories remain")
    order = [x["step_id"] for x in h.records(r.execution_id) if x["kind"] == "step.compensated"]
    equal(order, [sid(3), sid(2), sid(1)], "compensation order (reverse completion)")
    ensure(all(s.receipt.compensation_verified for s in r.step_results[:3]), "receipts not marked verified")
    return "3 steps undone, state hashes verified"


@check("§7.4", "compensate_on_failure false: skipped; partial: never compensated")
def _(h: Harness) -> None:
    r = h.run(h.plan({"action": "fs.write", "payload": {"path": "a.txt", "content": "x"}},
                     {"action": "control.fail", "depends_on": [sid(1)]}, compensate_on_failure=False))
    equal(code_of(r), "STEP_FAILED", describe(r))
    equal((statuses(r)[0], r.step_results[0].compensation_status.value), ("succeeded", "skipped"),
          "a step with a compensation when compensate_on_failure is false")
    ensure(h.file("a.txt").exists(), "the write was undone although compensate_on_failure is false")
    r = h.run(h.plan({"action": "fs.write", "payload": {"path": "b.txt", "content": "x"}},
                     {"action": "control.fail", "on_failure": "skip"}))
    equal(r.status.value, "partial", describe(r))
    equal((statuses(r)[0], r.step_results[0].compensation_status.value), ("succeeded", "not_required"),
          "a succeeded step in a partial")
    ensure(h.file("b.txt").exists(), "a partial was compensated")


@check("§7.4", "a compensation whose state differs from pre_state_hash is failed, and the plan error says so")
def _(h: Harness) -> None:
    r = h.run(h.plan({"action": "fs.write", "payload": {"path": "c.txt", "content": "x"},
                      "compensation": {"action": "control.noop"}},
                     {"action": "control.fail", "depends_on": [sid(1)]}))
    equal(code_of(r), "STEP_FAILED", describe(r))
    equal(r.step_results[0].compensation_status.value, "failed", "compensation_status of a compensation that "
                                                                   "did not restore the state")
    ensure(r.step_results[0].status.value != "compensated", "a failed compensation is reported as compensated")
    comp = r.error.details.get("compensation")
    ensure(isinstance(comp, dict) and comp.get("failed"), f"details.compensation does not report the failure: {comp}")
