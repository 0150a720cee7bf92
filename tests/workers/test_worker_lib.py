"""The library Worker (ordinance.engine.worker), in-process: concurrency, exit conditions, recovery."""

from __future__ import annotations

import asyncio

import pytest
from support import ENV, make_plan, sid
from workerkit import SHORT_LEASE_MS, Workers, records, wait_for

from ordinance.engine import Engine
from ordinance.engine.worker import Worker


def sleepy(ms: int, pid: int) -> dict:
    return make_plan({"action": "control.sleep", "payload": {"ms": ms}}, id=sid(pid))


def test_s5_8_worker_runs_up_to_concurrency_at_once_and_drains(backend, workspace):
    submitter = Engine(backend.store, recover_on_start=False)
    ids = [submitter.submit(sleepy(150, 501), environment=ENV) for _ in range(7)]
    engine = Engine(backend.store, workspace=str(workspace), recover_on_start=False, lease_ms=5000)
    finished = []
    worker = Worker(engine, concurrency=3, poll_ms=10, drain=True,
                    on_finished=lambda row, result: finished.append((row.execution_id, result.status.value)))
    peak = [0]

    async def main():
        async def watch():
            while True:
                peak[0] = max(peak[0], worker.running)
                await asyncio.sleep(0.005)

        w = asyncio.create_task(watch())
        try:
            return await worker.run()
        finally:
            w.cancel()
            await engine.aclose()

    stats = asyncio.run(main())
    assert stats.claimed == 7 and stats.finished == 7 and stats.by_status == {"success": 7}
    assert stats.stop_reason == "queue drained"
    assert peak[0] == 3  # never more than --concurrency, and it does use them
    assert sorted(finished) == sorted((i, "success") for i in ids)
    for eid in ids:
        kinds = [r["kind"] for r in records(backend.store, eid)]
        assert kinds.count("execution.received") == 1


def test_s5_8_max_executions_and_idle_exit(sqlite_backend, workspace):
    st = sqlite_backend.store
    submitter = Engine(st, recover_on_start=False)
    ids = [submitter.submit(sleepy(10, 502), environment=ENV) for _ in range(4)]
    engine = Engine(st, workspace=str(workspace), recover_on_start=False)
    stats = asyncio.run(Worker(engine, concurrency=2, poll_ms=10, max_executions=3).run())
    assert stats.claimed == 3 and stats.finished == 3 and "max executions" in stats.stop_reason
    assert sum(st.get_execution(i).status == "queued" for i in ids) == 1
    stats = asyncio.run(Worker(engine, poll_ms=10, idle_exit_s=0.2).run())
    assert stats.claimed == 1 and "idle" in stats.stop_reason
    assert all(st.get_execution(i).status == "success" for i in ids)


def test_s5_8_stop_event_with_nothing_running_returns_promptly(sqlite_backend, workspace):
    engine = Engine(sqlite_backend.store, workspace=str(workspace), recover_on_start=False)

    async def main():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, stop.set)
        return await asyncio.wait_for(Worker(engine, poll_ms=1000).run(stop), 10)

    assert asyncio.run(main()).stop_reason == "stop requested"


def test_worker_rejects_bad_settings(sqlite_backend):
    engine = Engine(sqlite_backend.store, recover_on_start=False)
    for kw in ({"concurrency": 0}, {"poll_ms": 0}, {"max_executions": 0}, {"idle_exit_s": -1}, {"grace_s": -1}):
        with pytest.raises(ValueError):
            Worker(engine, **kw)


def test_s5_8_recovery_compensates_in_the_workers_workspace(tmp_path, workspace):
    from ordinance.store.sqlite import SQLiteStore

    db = tmp_path / "s.db"
    elsewhere = tmp_path / "submitter"
    elsewhere.mkdir()
    (workspace / "state.txt").write_text("before")
    st = SQLiteStore(str(db))
    plan = make_plan({"action": "fs.write", "payload": {"path": "state.txt", "content": "after"}},
                     {"action": "control.sleep", "payload": {"ms": 60_000}, "depends_on": [sid(1)]}, id=sid(503))
    eid = Engine(st, workspace=str(elsewhere), recover_on_start=False).submit(plan, environment=ENV)
    pool = Workers(tmp_path)
    try:
        a = pool.start(str(db), workspace=workspace, lease_ms=SHORT_LEASE_MS)
        wait_for(lambda: any(r["kind"] == "step.attempt_started" and r.get("step_id") == sid(2)
                             for r in records(st, eid)), 30, "the sleep step")
        a.kill()
        b = pool.start(str(db), workspace=workspace, lease_ms=SHORT_LEASE_MS)
        wait_for(lambda: st.get_result(eid), 30, "recovery")
        b.terminate()
        b.wait(30)
    finally:
        pool.cleanup()
    assert st.get_result(eid)["step_results"][0]["status"] == "compensated"
    assert not (elsewhere / "state.txt").exists()  # nothing written outside the worker's workspace
    assert (workspace / "state.txt").read_text() == "before"
