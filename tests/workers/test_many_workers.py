"""Many worker processes on one store; SIGKILL and SIGTERM (CONTRACT §5.8)."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from support import chain_ok, make_plan, sid
from workerkit import SHORT_LEASE_MS, Workers, records, wait_for

from ordinance.engine import Engine


@pytest.fixture
def workers(tmp_path):
    w = Workers(tmp_path)
    yield w
    w.cleanup()


def submit(store, plan, n=1, **kw):
    e = Engine(store, recover_on_start=False)
    return [e.submit(plan, environment={"TARGET": "x"}, **kw) for _ in range(n)]


def test_s5_8_many_worker_processes_run_each_execution_exactly_once(backend, workers, workspace):
    procs = [workers.start(backend.url, "--concurrency", "2", "--poll-ms", "20", workspace=workspace) for _ in range(3)]
    owners = {p.owner(): p for p in procs}  # every worker is up and polling
    plan = make_plan({"action": "control.sleep", "payload": {"ms": 30}},
                     {"action": "control.sleep", "payload": {"ms": 30}, "depends_on": [sid(1)]}, id=sid(301))
    ids = submit(backend.store, plan, 30)
    wait_for(lambda: all(backend.store.get_result(i) is not None for i in ids), 40, "all 30 results")
    for p in procs:
        p.terminate()
    for p in procs:
        assert p.wait(30) == 0, p.text()

    ran_by: Counter = Counter()
    for eid in ids:
        recs = records(backend.store, eid)
        kinds = [r["kind"] for r in recs]
        assert kinds[0] == "execution.queued"
        assert kinds.count("execution.received") == 1, kinds  # claimed once
        assert kinds.count("execution.started") == 1
        assert kinds.count("execution.result") == 1 and kinds[-1] == "execution.result"
        received = next(r for r in recs if r["kind"] == "execution.received")
        assert received["data"]["engine"] in owners
        ran_by[received["data"]["engine"]] += 1
        assert backend.store.get_result(eid)["status"] == "success"
        assert backend.store.get_execution(eid).status == "success"
    logs = "".join(p.text() for p in procs)
    claimed = re.findall(r"claimed (\S+)", logs)
    assert sorted(claimed) == sorted(ids)  # each claimed exactly once across all workers
    assert sorted(re.findall(r"finished (\S+) success", logs)) == sorted(ids)
    assert sum(ran_by.values()) == 30
    chain_ok(backend.store)
    print("executions per worker:", dict(ran_by))


def test_s5_8_worker_killed_mid_execution_is_closed_by_another_workers_recovery(backend, workers, workspace):
    plan = make_plan(
        {"action": "control.echo", "payload": {"value": "first"}},
        {"action": "control.sleep", "payload": {"ms": 60_000}, "depends_on": [sid(1)]},
        {"action": "control.noop", "depends_on": [sid(2)]},
        id=sid(302),
    )
    [eid] = submit(backend.store, plan)
    a = workers.start(backend.url, "--concurrency", "1", workspace=workspace, lease_ms=SHORT_LEASE_MS)
    a_owner = a.owner()

    def sleeping():
        return any(r["kind"] == "step.attempt_started" and r.get("step_id") == sid(2) for r in records(backend.store, eid))

    wait_for(sleeping, 30, "the 60 s sleep step to start")
    b = workers.start(backend.url, "--concurrency", "1", workspace=workspace, lease_ms=SHORT_LEASE_MS)
    b_owner = b.owner()
    a.kill()  # SIGKILL mid-execution: no chance to clean up

    doc = wait_for(lambda: backend.store.get_result(eid), 30, "recovery to close the execution")
    b.terminate()
    assert b.wait(30) == 0, b.text()

    assert doc["status"] == "failure"
    assert doc["error"]["error_code"] == "EXECUTION_ABORTED"
    assert doc["error"]["details"]["reason"] == "executor_lost"
    assert [s["status"] for s in doc["step_results"]] == ["succeeded", "cancelled", "not_run"]
    assert f"recovered {eid}" in b.text()
    assert f"claimed {eid}" not in b.text()  # closed, never run again
    recs = records(backend.store, eid)
    kinds = [r["kind"] for r in recs]
    assert kinds.count("execution.received") == 1  # never resumed
    assert sum(1 for r in recs if r["kind"] == "step.attempt_started" and r.get("step_id") == sid(2)) == 1
    assert not any(r["kind"] == "step.attempt_started" and r.get("step_id") == sid(3) for r in recs)
    closed = next(r for r in recs if r["kind"] == "recovery.closed")
    assert closed["data"]["by"] == b_owner
    assert next(r for r in recs if r["kind"] == "execution.received")["data"]["engine"] == a_owner
    assert kinds[-1] == "execution.result"
    assert backend.store.get_execution(eid).status == "failure"
    chain_ok(backend.store)


def test_s5_8_sigterm_lets_running_executions_finish_and_claims_no_more(sqlite_backend, workers, workspace):
    st = sqlite_backend.store
    plan = make_plan({"action": "control.sleep", "payload": {"ms": 1500}}, id=sid(303))
    ids = submit(st, plan, 2)
    w = workers.start(sqlite_backend.url, "--concurrency", "1", workspace=workspace)

    def started() -> str | None:
        # both were queued in the same millisecond: which one is taken first is up to their ids
        return next((e for e in ids if any(r["kind"] == "step.attempt_started" for r in records(st, e))), None)

    first = wait_for(started, 30, "the first step")
    second = next(e for e in ids if e != first)
    w.terminate()
    assert w.wait(30) == 0, w.text()
    assert st.get_result(first)["status"] == "success"  # finished within the grace period
    assert st.get_execution(second).status == "queued"  # never claimed after the signal
    assert st.get_result(second) is None
    assert "SIGTERM: stopping" in w.text() and "stop requested" in w.text()


def test_s5_8_grace_period_over_cancels_running_executions(sqlite_backend, workers, workspace):
    st = sqlite_backend.store
    plan = make_plan({"action": "control.sleep", "payload": {"ms": 60_000}}, {"action": "control.noop"}, id=sid(304))
    [eid] = submit(st, plan)
    w = workers.start(sqlite_backend.url, "--grace-s", "0.3", workspace=workspace)
    wait_for(lambda: any(r["kind"] == "step.attempt_started" and r.get("step_id") == sid(1) for r in records(st, eid)),
             30, "the sleep step")
    w.terminate()
    assert w.wait(30) == 0, w.text()
    doc = st.get_result(eid)
    assert doc is not None, w.text()
    assert doc["status"] == "failure"
    assert doc["error"]["error_code"] == "EXECUTION_ABORTED"
    assert doc["error"]["details"]["reason"] == "cancelled"
    assert doc["step_results"][0]["status"] == "cancelled"
    assert st.get_execution(eid).status == "failure"
    assert "grace period over" in w.text()
    chain_ok(st)


def test_s5_8_a_second_signal_ends_the_grace_period_at_once(sqlite_backend, workers, workspace):
    import signal

    st = sqlite_backend.store
    plan = make_plan({"action": "control.sleep", "payload": {"ms": 60_000}}, id=sid(305))
    [eid] = submit(st, plan)
    w = workers.start(sqlite_backend.url, "--grace-s", "600", workspace=workspace)
    wait_for(lambda: any(r["kind"] == "step.attempt_started" for r in records(st, eid)), 30, "the sleep step")
    w.popen.send_signal(signal.SIGINT)
    wait_for(lambda: "SIGINT: stopping" in w.text(), 30, "the first signal to be seen")
    w.popen.send_signal(signal.SIGTERM)
    assert w.wait(30) == 0, w.text()  # well before the 600 s grace period
    doc = st.get_result(eid)
    assert doc["error"]["error_code"] == "EXECUTION_ABORTED" and doc["error"]["details"]["reason"] == "cancelled"
    assert "SIGTERM again" in w.text()
