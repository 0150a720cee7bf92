"""Leases and recovery (CONTRACT §5.8): kill -9 at any moment leaves a store that recover closes and that verifies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from support import ENV, chain_ok, make_plan, sid

from ordinance.contract import ErrorCode, PlanStatus
from ordinance.engine.outcome import RULE_SETS


def spawn_run(plan_path, store_path, workspace, lease_ms=400):
    env = dict(os.environ, ORDINANCE_LEASE_MS=str(lease_ms))
    return subprocess.Popen(
        [sys.executable, "-m", "ordinance.cli.app", "run", str(plan_path), "--env", "TARGET=x", "--json",
         "--store", str(store_path), "--workspace", str(workspace)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def wait_for(pred, timeout=20.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_s5_8_killed_executor_is_closed_by_recovery_never_resumed(tmp_path, workspace):
    from ordinance.engine import Engine
    from ordinance.store.sqlite import SQLiteStore

    (workspace / "state.txt").write_text("before")
    plan = make_plan(
        {"action": "fs.write", "payload": {"path": "state.txt", "content": "after"}},
        {"action": "control.sleep", "payload": {"ms": 60_000}, "depends_on": [sid(1)]},
        {"action": "control.noop", "depends_on": [sid(2)]},
    )
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))
    db = tmp_path / "s.db"
    proc = spawn_run(plan_path, db, workspace)
    store = SQLiteStore(str(db))
    try:
        def sleeping():
            return any(json.loads(r.body).get("step_id") == sid(2) and r.kind == "step.attempt_started"
                       for r in store.journal())
        wait_for(sleeping)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        [row] = store.list_executions()
        assert row.status == "running"
        time.sleep(0.5)  # let the lease expire
        results = Engine(store, workspace=str(workspace), lease_ms=400).recover()
        assert len(results) == 1
        r = results[0]
        assert r.status is PlanStatus.FAILURE
        assert r.error.error_code is ErrorCode.EXECUTION_ABORTED
        assert r.error.details["reason"] == "executor_lost"
        assert [s.status.value for s in r.step_results] == ["compensated", "cancelled", "not_run"]
        assert (workspace / "state.txt").read_text() == "before"  # compensation ran in recovery
        kinds = [x.kind for x in store.journal(row.execution_id)]
        outcome = [k[8:] for k in kinds if k.startswith("outcome.")]
        assert outcome == list(RULE_SETS[PlanStatus.FAILURE])
        assert kinds[-1] == "execution.result"
        assert store.get_execution(row.execution_id).status == "failure"
        chain_ok(store)
        # a second recovery finds nothing; the result is final (R-NO-RESUME)
        assert Engine(store, workspace=str(workspace), lease_ms=400).recover() == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        store.close()


@pytest.mark.parametrize("delay_ms", [0, 30, 80, 150, 300])
def test_s5_8_kill_9_at_any_moment_store_stays_consistent(tmp_path, workspace, delay_ms):
    from ordinance.engine import Engine
    from ordinance.store.sqlite import SQLiteStore

    steps = [{"action": "fs.write", "payload": {"path": f"f{i}.txt", "content": str(i)}} for i in range(20)]
    for i in range(1, 20):
        steps[i]["depends_on"] = [sid(i)]
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(make_plan(*steps)))
    db = tmp_path / "s.db"
    proc = spawn_run(plan_path, db, workspace, lease_ms=200)
    time.sleep(0.25 + delay_ms / 1000)  # interpreter start-up is about this long
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    store = SQLiteStore(str(db))
    try:
        chain_ok(store)
        time.sleep(0.3)
        Engine(store, workspace=str(workspace), lease_ms=200).recover()
        chain_ok(store)
        for row in store.list_executions():
            assert row.status in ("success", "partial", "failure")
            assert store.get_result(row.execution_id) is not None
    finally:
        store.close()


def test_s5_8_running_engine_renews_its_lease(store, workspace):
    from ordinance.engine import Engine

    e = Engine(store, workspace=str(workspace), lease_ms=150)
    r = e.run(make_plan({"action": "control.sleep", "payload": {"ms": 700}}), environment=ENV)
    assert r.status is PlanStatus.SUCCESS  # not closed by its own recovery, the lease was renewed


def test_s5_8_lease_length_from_environment(monkeypatch, store):
    from ordinance.engine import Engine

    monkeypatch.setenv("ORDINANCE_LEASE_MS", "1234")
    assert Engine(store).lease_ms == 1234
    monkeypatch.setenv("ORDINANCE_LEASE_MS", "soon")
    with pytest.raises(ValueError, match="ORDINANCE_LEASE_MS"):
        Engine(store)


def test_disk_full_journal_write_ends_in_a_result_not_a_traceback(tmp_path, workspace):
    from ordinance.engine import Engine
    from ordinance.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "full.db"))
    e = Engine(store, workspace=str(workspace))
    ok = e.run(make_plan({"action": "control.noop"}), environment=ENV)
    assert ok.status is PlanStatus.SUCCESS
    # make the database unable to grow: every further page allocation fails with SQLITE_FULL
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    big = [{"action": "control.echo", "payload": {"value": "x" * 20_000}} for _ in range(40)]
    r = Engine(store, workspace=str(workspace)).run(make_plan(*big, id="22222222-2222-4222-8222-222222222222"),
                                                    environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert r.error.error_code is ErrorCode.EXECUTION_ABORTED
    assert r.error.details["reason"] == "store_error"
    # what was stored before is intact
    assert store.get_result(ok.execution_id)["status"] == "success"
    chain_ok(store)
    store.close()


def test_s5_8_an_executor_that_lost_its_lease_cannot_write_or_compensate(store, workspace):
    """Fencing: once recovery took an execution over, the old executor's commits are refused (nothing written),
    it does not compensate, and the recovered result stands."""
    import asyncio

    from ordinance.engine import Engine

    (workspace / "f.txt").write_text("before")
    plan = make_plan({"action": "fs.write", "payload": {"path": "f.txt", "content": "after"}},
                     {"action": "control.sleep", "payload": {"ms": 1500}, "depends_on": [sid(1)]})
    slow = Engine(store, workspace=str(workspace), lease_ms=200, recover_on_start=False)

    async def main():
        task = asyncio.create_task(slow.run_async(plan, environment=ENV))
        while not any(r.kind == "step.attempt_started" and json.loads(r.body).get("step_id") == sid(2)
                      for r in store.journal()):
            await asyncio.sleep(0.01)
        slow._lease_task.cancel()  # the executor stalls: it stops renewing its lease
        await asyncio.sleep(0.4)
        rescuer = Engine(store, workspace=str(workspace), lease_ms=200, recover_on_start=False)
        recovered = await rescuer.recover_async()
        await rescuer.aclose()
        stale = await task
        await slow.aclose()
        return recovered, stale

    recovered, stale = asyncio.run(main())
    assert len(recovered) == 1 and recovered[0].error.details["reason"] == "executor_lost"
    assert stale.error.error_code is ErrorCode.EXECUTION_ABORTED and stale.error.details["reason"] == "lease_lost"
    stored = store.get_result(stale.execution_id)
    assert stored["error"]["details"]["reason"] == "executor_lost"  # recovery's result stands
    assert (workspace / "f.txt").read_text() == "before"  # compensated once, by recovery
    chain_ok(store)


def test_s5_8_recovery_names_the_lost_executor_not_itself(store, workspace):
    import asyncio

    from ordinance.engine import Engine

    lost = Engine(store, workspace=str(workspace), lease_ms=150, recover_on_start=False, owner="host-a:1:lost")
    plan = make_plan({"action": "control.sleep", "payload": {"ms": 5000}})

    async def main():
        task = asyncio.create_task(lost.run_async(plan, environment=ENV))
        while not any(r.kind == "step.attempt_started" for r in store.journal()):
            await asyncio.sleep(0.01)
        lost._lease_task.cancel()
        await asyncio.sleep(0.3)
        rescuer = Engine(store, workspace=str(workspace), lease_ms=150, recover_on_start=False, owner="host-b:2:rescuer")
        [r] = await rescuer.recover_async()
        await rescuer.aclose()
        task.cancel()
        try:
            await task
        except BaseException:
            pass
        await lost.aclose()
        return r

    r = asyncio.run(main())
    closed = [json.loads(x.body) for x in store.journal(r.execution_id) if x.kind == "recovery.closed"][0]
    assert closed["data"]["previous_owner"] == "host-a:1:lost" and closed["data"]["by"] == "host-b:2:rescuer"
    assert "host-a:1:lost" in r.error.message


def test_s5_8_an_engine_whose_lease_renewal_fails_stops_the_execution(store, workspace):
    """Renewal answering 'not yours' stops in-flight work at once, without writing (fencing)."""
    import asyncio
    import time as _time

    from ordinance.engine import Engine

    e = Engine(store, workspace=str(workspace), lease_ms=150, recover_on_start=False)
    plan = make_plan({"action": "control.sleep", "payload": {"ms": 60_000}})

    async def main():
        task = asyncio.create_task(e.run_async(plan, environment=ENV))
        while not any(r.kind == "step.attempt_started" for r in store.journal()):
            await asyncio.sleep(0.01)
        [row] = store.list_executions()
        # another engine takes the execution over behind our back
        assert store.claim_expired(row.lease_expires_at + 1, "thief", 60_000) != []
        t0 = _time.monotonic()
        result = await task
        await e.aclose()
        return result, _time.monotonic() - t0

    result, waited = asyncio.run(main())
    assert waited < 10  # stopped at the next renewal, not after the 60 s sleep
    assert result.error.details["reason"] == "lease_lost"
    assert store.get_result(result.execution_id) is None  # nothing of ours was written after the takeover
