"""§5.6 rule sets, R-NO-RESUME, R-EXEC-ID-ONCE, §5.7 events, §5.8 persistence and recovery."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..harness import ENV, Harness, code_of, describe, now_ms, sid, statuses
from ..registry import check, ensure, equal

#: §5.6, verbatim from the contract (never read from the engine: the check must be able to fail).
RULE_SETS: dict[str, list[str]] = {
    "success": ["record_completion", "build_result", "validate_result", "persist_result", "emit_event",
                "update_registry", "release_resources", "return_result"],
    "partial": ["record_completion", "collect_outcomes", "classify_errors", "select_error", "build_result",
                "validate_result", "persist_result", "emit_event", "update_registry", "release_resources"],
    "failure": ["stop_scheduling", "stop_in_flight", "classify_errors", "compensate", "record_completion",
                "build_result", "validate_result", "persist_result", "update_registry", "emit_event",
                "release_resources", "notify_error_handler", "return_result"],
}
_REGISTRY_STATUS = {"success": "completed", "partial": "partial", "failure": "failed"}

#: §5.7, verbatim.
EVENT_NAMES = {"plan_received", "execution_started", "step_started", "step_succeeded", "step_failed",
               "step_retry_scheduled", "step_skipped", "step_timed_out", "step_compensated",
               "plan_execution_success", "plan_execution_partial", "plan_execution_failure"}


def _outcomes(h: Harness) -> dict[str, Any]:
    return {
        "success": h.run(h.plan({"action": "control.noop"})),
        "partial": h.run(h.plan({"action": "control.noop"}, {"action": "control.fail", "on_failure": "skip"})),
        "failure": h.run(h.plan({"action": "control.noop"}, {"action": "control.fail", "depends_on": [sid(1)]})),
        "failure (admission)": h.run(h.plan({"action": "no.such.action"})),
        "failure (timeout)": h.run(h.plan({"action": "control.sleep", "payload": {"ms": 5_000}}, timeout_ms=50)),
    }


# --------------------------------------------------------------------------------------------------------- §5.6

@check("R-RULESET-ORDER", "the journal's outcome.* records are the rule set, in order, for each outcome")
def _(h: Harness) -> str:
    for name, r in _outcomes(h).items():
        status = name.split(" ")[0]
        equal(r.status.value, status, f"{name}: {describe(r)}")
        equal(h.outcome_kinds(r.execution_id), RULE_SETS[status], f"{name}: outcome.* records in journal order")
    return "success (8), partial (10), failure (13) incl. admission and timeout failures"


@check("§5.6", "each rule set runs in full: registry status, event name, result digest, last record")
def _(h: Harness) -> str:
    from ...contract.canonical import digest

    for name, r in _outcomes(h).items():
        status = name.split(" ")[0]
        recs = h.records(r.execution_id)
        outcome = [x for x in recs if x["kind"].startswith("outcome.")]
        equal([x["kind"][8:] for x in outcome], RULE_SETS[status], f"{name}: rule set")
        by = {x["kind"][8:]: x["data"] for x in outcome}
        equal(by["update_registry"].get("registry_status"), _REGISTRY_STATUS[status], f"{name}: update_registry")
        equal(by["emit_event"].get("event"), f"plan_execution_{status}", f"{name}: emit_event")
        stored = h.store.get_result(r.execution_id)
        ensure(stored is not None, f"{name}: no stored result")
        equal(by["persist_result"].get("result_digest"), digest(stored), f"{name}: persist_result digest")
        equal(recs[-1]["kind"], "execution.result", f"{name}: last journal record")
        equal(recs[-1]["data"].get("result_digest"), digest(stored), f"{name}: digest in the last record")
        row = h.store.get_execution(r.execution_id)
        equal(row.status if row else None, status, f"{name}: execution row status")
    return "5 executions"


@check("§5.6", "a result that fails its own validation is refused by validate_result")
def _(h: Harness) -> None:
    from ...contract.errors import ErrorCode
    from ...contract.models import ExecutionError
    from ...engine.outcome import check_result

    r = h.run(h.plan({"action": "control.noop"}, {"action": "control.noop"}))
    equal(check_result(r), [], "validation problems of a correct result")
    err = ExecutionError.of(ErrorCode.STEP_FAILED, "x", occurred_at=1)
    broken = {
        "a success with an error": r.model_copy(update={"error": err}),
        "a failure without an error": r.model_copy(update={"status": r.status.__class__("failure")}),
        "a wrong steps_executed": r.model_copy(update={"steps_executed": 1}),
        "a missing step result": r.model_copy(update={"step_results": r.step_results[:1]}),
    }
    for what, res in broken.items():
        ensure(check_result(res), f"validate_result accepted {what}")


@check("R-NO-RESUME", "a partial or failure is terminal: resubmitting its id returns it and runs nothing")
def _(h: Harness) -> None:
    cases = {
        "failure": h.plan({"action": "control.fail", "payload": {"fail_attempts": 1}},
                          {"action": "conformance.counter", "payload": {"key": str(uuid.uuid4())},
                           "depends_on": [sid(1)]}),
        "partial": h.plan({"action": "control.noop"},
                          {"action": "control.fail", "payload": {"fail_attempts": 1}, "on_failure": "skip"}),
    }
    for status, plan in cases.items():
        ctx = h.context(plan)
        first = h.run(plan, ctx)
        equal(first.status.value, status, describe(first))
        n = len(h.kinds(ctx["execution_id"]))
        again = h.run(plan, dict(ctx))
        equal(again.to_document(), first.to_document(), f"{status}: the result of a resubmission")
        equal(len(h.kinds(ctx["execution_id"])), n, f"{status}: journal records after the resubmission")
        # a fresh engine (with recovery at start) does not pick it up either
        h.engine().recover()
        equal(h.store.get_result(ctx["execution_id"]), first.to_document(), f"{status}: stored result after recovery")
    payload_key = cases["failure"]["steps"][1]["payload"]["key"]
    from ..actions import counter_value

    equal(counter_value(payload_key), 0, "runs of the step after the failed one")


@check("R-EXEC-ID-ONCE", "a known id with the same plan returns the stored result; with another plan CONTEXT_INVALID")
def _(h: Harness) -> None:
    plan = h.plan({"action": "control.echo", "payload": {"value": 1}},
                  {"action": "fs.write", "payload": {"path": "once.txt", "content": "1"}})
    ctx = h.context(plan)
    first = h.run(plan, ctx)
    equal(first.status.value, "success", describe(first))
    n = len(h.kinds(ctx["execution_id"]))
    h.file("once.txt").write_text("changed after the run")
    again = h.run(json.dumps(plan).encode(), json.dumps(ctx).encode())
    equal(again.to_document(), first.to_document(), "the result of a resubmission with the same plan")
    equal(len(h.kinds(ctx["execution_id"])), n, "journal records after the resubmission")
    equal(h.file("once.txt").read_text(), "changed after the run", "the file the plan writes (it must not run again)")
    other = h.plan({"action": "control.noop"})
    ctx2 = dict(ctx, plan_id=other["id"])
    r = h.run(other, ctx2)
    equal((r.status.value, code_of(r)), ("failure", "CONTEXT_INVALID"), f"the same id for another plan: {describe(r)}")
    equal(h.store.get_result(ctx["execution_id"]), first.to_document(), "the first execution's stored result")
    equal(len(h.kinds(ctx["execution_id"])), n, "the first execution's journal")



# --------------------------------------------------------------------------------------------------------- §5.7

def _collect(h: Harness, plan: dict[str, Any], **engine_kwargs: Any) -> tuple[Any, list[dict[str, Any]], Any]:
    from ...engine import CallbackSink

    events: list[dict[str, Any]] = []
    eng = h.engine(sinks=[CallbackSink(events.append)], **engine_kwargs)
    r = h.run(plan, engine=eng)
    return r, events, eng


@check("§5.7", "CloudEvents 1.0: type ordinance.<name>, source = origin, subject = execution id, names from the list")
def _(h: Harness) -> str:
    r, events, eng = _collect(h, h.plan({"action": "control.noop"}, {"action": "control.noop", "depends_on": [sid(1)]}),
                              origin="urn:ordinance:conformance")
    equal([e["type"] for e in events],
          ["ordinance.plan_received", "ordinance.execution_started", "ordinance.step_started",
           "ordinance.step_succeeded", "ordinance.step_started", "ordinance.step_succeeded",
           "ordinance.plan_execution_success"], "event types of a two-step success")
    for e in events:
        for f in ("specversion", "id", "source", "type", "subject", "time", "data"):
            ensure(f in e, f"event {e.get('type')} lacks {f!r}")
        equal(e["specversion"], "1.0", "specversion")
        equal(e["source"], "urn:ordinance:conformance", "source")
        equal(e["subject"], r.execution_id, "subject")
        ensure(e["type"].startswith("ordinance.") and e["type"][10:] in EVENT_NAMES, f"unknown event type {e['type']}")
        json.dumps(e)  # structured JSON
    ensure(len({e["id"] for e in events}) == len(events), "event ids are not unique")
    plan = h.plan({"action": "fs.write", "payload": {"path": "f.txt", "content": "x"}},
                  {"action": "control.fail", "payload": {"fail_attempts": 1}, "on_failure": "retry",
                   "retry_policy": {"initial_delay_ms": 0}},
                  {"action": "control.fail", "on_failure": "skip"},
                  {"action": "control.sleep", "payload": {"ms": 5_000}, "timeout_ms": 30,
                   "depends_on": [sid(1), sid(2)]})
    r, events, _ = _collect(h, plan)
    names = {e["type"][10:] for e in events}
    want = {"step_failed", "step_retry_scheduled", "step_skipped", "step_timed_out", "step_compensated",
            "plan_execution_failure"}
    ensure(want <= names, f"missing event names {sorted(want - names)} in a run with retry, skip, timeout and "
                          f"compensation ({describe(r)})")
    ensure(names <= EVENT_NAMES, f"names outside the contract's list: {sorted(names - EVENT_NAMES)}")
    r, events, _ = _collect(h, h.plan({"action": "control.noop"}, {"action": "control.fail", "on_failure": "skip"}))
    ensure("ordinance.plan_execution_partial" in [e["type"] for e in events], "no plan_execution_partial event")
    return f"{len(EVENT_NAMES)} names seen across success, partial and failure"


@check("§5.7", "sinks: JSON Lines file, HMAC-signed webhook, durable outbox")
def _(h: Harness) -> str:
    from ...engine import JsonlSink, WebhookSink

    received: list[tuple[bytes, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append((body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = b"conformance-secret"
    jsonl = h.root / "events.jsonl"
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        eng = h.engine(sinks=[JsonlSink(jsonl), WebhookSink(url, secret)], outbox=True)
        r = h.run(h.plan({"action": "control.noop"}), engine=eng)
    finally:
        server.shutdown()
        server.server_close()
    equal(r.status.value, "success", describe(r))
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    types = [e["type"] for e in lines]
    equal(types[-1] if types else None, "ordinance.plan_execution_success", "last event in the JSON Lines file")
    ensure(received, "the webhook received nothing")
    for body, headers in received:
        sig = headers.get("x-ordinance-signature", "")
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        ensure(hmac.compare_digest(sig, want), f"webhook signature {sig!r} is not HMAC-SHA256 of the body")
    equal(sorted(json.loads(b)["type"] for b, _ in received), sorted(types), "events delivered to the webhook")
    claimed = h.store.outbox_claim(now_ms() + 60_000, limit=1000)
    outbox_types = [ev.event["type"] for _, ev, _ in claimed if ev.execution_id == r.execution_id]
    equal(sorted(outbox_types), sorted(types), "events in the durable outbox")
    return f"{len(types)} events on each sink"


@check("R-EVENTS-NONBLOCKING", "a hanging async sink and a failing sink neither delay nor change the run")
def _(h: Harness) -> str:
    from ...engine import CallbackSink

    # control.sleep gives the loop a turn mid-run (noop, fail and echo run inline), so the sinks are reached
    plan = h.plan({"action": "control.noop"}, {"action": "control.fail", "on_failure": "skip"},
                  {"action": "control.sleep", "payload": {"ms": 5}}, {"action": "control.echo", "payload": {"value": 1}})
    baseline = h.run(plan)

    async def main() -> tuple[Any, bool]:
        gate = asyncio.Event()
        calls = {"n": 0}

        async def hanging(event: dict[str, Any]) -> None:
            calls["n"] += 1
            await gate.wait()

        def failing(event: dict[str, Any]) -> None:
            raise RuntimeError("sink down")

        eng = h.engine(sinks=[CallbackSink(hanging), CallbackSink(failing)])
        r = await eng.run_async(plan, environment=dict(ENV))
        still_blocked = not gate.is_set() and calls["n"] >= 1
        gate.set()
        await eng.aclose()
        return r, still_blocked

    t0 = time.monotonic()
    r, blocked = asyncio.run(main())
    elapsed = time.monotonic() - t0
    ensure(blocked, "the run did not return while the hanging sink was still blocked")
    equal(statuses(r), statuses(baseline), "step statuses with hanging and failing sinks")
    equal((r.status.value, code_of(r)), (baseline.status.value, code_of(baseline)), "status and code")
    ensure(r.duration_ms < 1_000, f"the run took {r.duration_ms} ms with a hanging sink")
    return f"returned after {elapsed * 1000:.0f} ms with the sink still blocked"


@check("R-EVENTS-NONBLOCKING", "a slow synchronous callback sink neither delays the run nor keeps it from returning",
       timeout_s=30)
def _(h: Harness) -> str:
    from ...engine import CallbackSink

    per_event = 0.2
    eng = h.engine(sinks=[CallbackSink(lambda event: time.sleep(per_event))])
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = h.run(h.plan({"action": "control.noop"}, {"action": "control.noop"},
                                         {"action": "control.noop"}), engine=eng)
        except BaseException as exc:  # noqa: BLE001
            box["exc"] = exc

    t0 = time.monotonic()
    t = threading.Thread(target=target, daemon=True, name="conformance slow sink")
    t.start()
    t.join(3.5)
    if t.is_alive():
        raise AssertionError(
            f"Engine.run did not return within 3.5 s with a callback sink that sleeps {per_event * 1000:.0f} ms per "
            "event (9 events): it hangs in the event bus shutdown, and the sink blocks the engine's event loop")
    if "exc" in box:
        raise box["exc"]
    r = box["result"]
    equal(r.status.value, "success", describe(r))
    ensure(r.duration_ms < per_event * 1000,
           f"the execution took {r.duration_ms} ms: the synchronous sink ({per_event * 1000:.0f} ms per event) "
           "blocked the engine's event loop")
    return f"returned after {(time.monotonic() - t0) * 1000:.0f} ms, execution {r.duration_ms} ms"


# --------------------------------------------------------------------------------------------------------- §5.8

@check("§5.8", "registry, execution row, result; the result is durable before its outcome event")
def _(h: Harness) -> str:
    from ...contract.canonical import digest

    seen: dict[str, Any] = {}
    store = h.store

    def on_event(event: dict[str, Any]) -> None:
        t = event["type"]
        eid = event["subject"]
        if t == "ordinance.step_started":
            row = store.get_execution(eid)
            seen["lease"] = (row.status, row.lease_owner, row.lease_expires_at) if row else None
        if t.startswith("ordinance.plan_execution_"):
            seen.setdefault("durable", []).append(store.get_result(eid) is not None)

    eng = h.engine()
    plan = h.plan({"action": "control.noop"})
    r = h.run(plan, engine=eng, on_event=on_event)
    fail = h.run(h.plan({"action": "control.fail"}), engine=eng, on_event=on_event)
    equal(seen.get("durable"), [True, True], "result stored when plan_execution_success / _failure was emitted")
    status, owner, expires = seen.get("lease") or (None, None, None)
    equal((status, owner), ("running", eng.owner), "the running execution's status and lease owner")
    ensure(expires is not None and expires > now_ms() - 5_000, "the running execution has no current lease")
    equal(store.get_plan(plan["id"], 1), (digest(plan), plan), "the registry entry (digest, body)")
    for res in (r, fail):
        row = store.get_execution(res.execution_id)
        equal((row.status, row.lease_owner), (res.status.value, None), "the finished execution's row (lease released)")
        equal(store.get_result(res.execution_id), res.to_document(), "the stored result")
    return "lease held while running, released after; result durable before the event"


class _PartitionedStore:
    """Built on demand: a SQLiteStore whose lease renewals never reach the database (a stalled executor)."""

    @staticmethod
    def open(path: str) -> Any:
        from ...store.base import StoreError
        from ...store.sqlite import SQLiteStore

        class Partitioned(SQLiteStore):
            def renew_lease(self, execution_id: str, owner: str, expires_at: int) -> bool:
                raise StoreError("renew_lease failed: connection lost (simulated by the conformance suite)")

        return Partitioned(path)


@check("§5.8", "recovery closes an execution whose lease expired: cancelled, compensated, EXECUTION_ABORTED")
def _(h: Harness) -> str:
    from ..actions import open_gate

    gate = str(uuid.uuid4())
    h.write_file("state.txt", "before")
    lost_store = _PartitionedStore.open(str(h.db_path))
    h._stores.append(lost_store)
    lost = h.engine(store=lost_store, lease_ms=250)
    plan = h.plan({"action": "fs.write", "payload": {"path": "state.txt", "content": "after"}},
                  {"action": "conformance.wait_gate", "payload": {"key": gate, "max_ms": 20_000},
                   "depends_on": [sid(1)]},
                  {"action": "control.noop", "depends_on": [sid(2)]})
    ctx = h.context(plan)
    eid = ctx["execution_id"]
    box: dict[str, Any] = {}

    def stalled_executor() -> None:
        try:
            box["result"] = lost.run(plan, ctx)
        except BaseException as exc:  # noqa: BLE001
            box["exc"] = exc

    t = threading.Thread(target=stalled_executor, daemon=True, name="conformance stalled executor")
    t.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(r.kind == "step.attempt_started" and json.loads(r.body).get("step_id") == sid(2)
                   for r in h.store.journal(eid)):
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the gated step never started")
        ensure(h.file("state.txt").read_text() == "after", "step 1 did not write the file")
        row = h.store.get_execution(eid)
        while now_ms() <= (row.lease_expires_at or 0) + 5:
            time.sleep(0.01)
        results = h.engine(lease_ms=250).recover()
    finally:
        open_gate(gate)
        t.join(10)
    equal(len(results), 1, "executions closed by recovery")
    r = results[0]
    equal((r.execution_id, r.status.value, code_of(r)), (eid, "failure", "EXECUTION_ABORTED"), describe(r))
    equal(r.error.details.get("reason"), "executor_lost", "details.reason")
    equal(statuses(r), ["compensated", "cancelled", "not_run"], "step statuses after recovery")
    equal(h.file("state.txt").read_text(), "before", "the file after recovery (compensation included)")
    equal(h.outcome_kinds(eid), [
        "stop_scheduling", "stop_in_flight", "classify_errors", "compensate", "record_completion", "build_result",
        "validate_result", "persist_result", "update_registry", "emit_event", "release_resources",
        "notify_error_handler", "return_result"], "the recovery's rule set")
    ensure(not t.is_alive(), "the stalled executor did not stop after its lease was taken over")
    equal(h.store.get_result(eid), r.to_document(), "the stored result (the stalled executor must not overwrite it)")
    starts = [json.loads(x.body).get("step_id") for x in h.store.journal(eid) if x.kind == "step.attempt_started"]
    ensure(sid(3) not in starts, "step 3 started after recovery: an expired execution was resumed")
    equal(h.kinds(eid)[-1], "execution.result", "last record")
    equal(h.engine().recover(), [], "a second recovery")
    return "in-flight step cancelled, write undone, stalled executor fenced"


@check("R-PLAN-IMMUTABLE", "a different body under a registered id + version is PLAN_INVALID (R-PLAN-IMMUTABLE)")
def _(h: Harness) -> None:
    plan = h.plan({"action": "control.echo", "payload": {"value": 1}})
    first = h.run(plan)
    equal(first.status.value, "success", describe(first))
    changed = json.loads(json.dumps(plan))
    changed["steps"][0]["payload"]["value"] = 2
    r = h.run(changed)
    equal((code_of(r), r.steps_executed), ("PLAN_INVALID", 0), f"a changed body under the same id and version: "
                                                               f"{describe(r)}")
    rules = [v.get("rule") for v in r.error.details.get("violations", [])]
    ensure("R-PLAN-IMMUTABLE" in rules, f"violations do not name R-PLAN-IMMUTABLE: {rules}")
    from ...contract.canonical import digest

    equal(h.store.get_plan(plan["id"], 1), (digest(plan), plan), "the registry entry after the refusal")
    equal(h.run(plan).status.value, "success", "the same body again")
    changed["version"] = 2
    equal(h.run(changed).status.value, "success", "the changed body as version 2")
