"""Hard timeouts (CONTRACT §5.3): async cancelled, subprocess group killed, sync code in a killed process.

No timing assertions: these check that work *stopped* (generous bounds far below the work's own length),
and that no late result is accepted. Stop precision is measured by bench/engine.py.
"""

from __future__ import annotations

import os
import time

from ordinance.contract import ErrorCode, PlanStatus
from support import ENV, journal_kinds, make_plan, sid


def test_s5_3_async_step_past_timeout_is_cancelled_STEP_TIMEOUT(engine, store):
    t0 = time.monotonic()
    r = engine.run(make_plan({"action": "control.sleep", "payload": {"ms": 60_000}, "timeout_ms": 100}), environment=ENV)
    assert time.monotonic() - t0 < 20
    assert r.status is PlanStatus.FAILURE
    assert r.error.error_code is ErrorCode.STEP_TIMEOUT
    assert r.step_results[0].output is None
    assert "step.attempt_timed_out" in journal_kinds(store, r.execution_id)


def test_s5_3_sync_python_runs_in_a_killed_process(engine):
    t0 = time.monotonic()
    r = engine.run(make_plan({"action": "control.spin", "payload": {"ms": 60_000}, "timeout_ms": 150}), environment=ENV)
    assert time.monotonic() - t0 < 20
    assert r.error.error_code is ErrorCode.STEP_TIMEOUT


def test_s5_3_sync_step_result_round_trips_through_the_pool(engine):
    r = engine.run(make_plan({"action": "control.spin", "payload": {"ms": 5}}), environment=ENV)
    assert r.status is PlanStatus.SUCCESS
    assert r.step_results[0].output == {"spun_ms": 5}


def test_s5_3_subprocess_and_its_whole_group_are_killed(engine, workspace):
    pidfile = workspace / "pids"
    script = f"sleep 300 & echo $$ $! > {pidfile}; wait"
    r = engine.run(make_plan({"action": "shell.run", "payload": {"argv": ["sh", "-c", script]}, "timeout_ms": 500}),
                   environment=ENV)
    assert r.error.error_code is ErrorCode.STEP_TIMEOUT
    shell_pid, child_pid = map(int, pidfile.read_text().split())
    deadline = time.monotonic() + 5
    for pid in (shell_pid, child_pid):
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        else:
            raise AssertionError(f"process {pid} survived the timeout")


def test_s5_3_timeout_is_retried_when_policy_allows(engine):
    plan = make_plan({"action": "control.sleep", "payload": {"ms": 60_000}, "timeout_ms": 50, "on_failure": "retry",
                      "retry_policy": {"max_attempts": 3, "initial_delay_ms": 0, "retry_on": ["STEP_TIMEOUT"]}})
    r = engine.run(plan, environment=ENV)
    assert r.step_results[0].attempts == 3
    assert r.error.error_code is ErrorCode.STEP_TIMEOUT


def test_s5_3_plan_deadline_stops_everything_in_flight_PLAN_TIMEOUT(engine, store):
    plan = make_plan(
        {"action": "control.sleep", "payload": {"ms": 60_000}},
        {"action": "control.spin", "payload": {"ms": 60_000}},
        {"action": "shell.run", "payload": {"argv": ["sleep", "60"]}},
        {"action": "control.noop", "depends_on": [sid(1)]},
        timeout_ms=400,
    )
    t0 = time.monotonic()
    r = engine.run(plan, environment=ENV)
    assert time.monotonic() - t0 < 20
    assert r.status is PlanStatus.FAILURE
    assert r.error.error_code is ErrorCode.PLAN_TIMEOUT
    assert [s.status.value for s in r.step_results] == ["cancelled", "cancelled", "cancelled", "not_run"]
    assert set(r.error.details["in_flight"]) == {sid(1), sid(2), sid(3)}
    assert journal_kinds(store, r.execution_id).count("step.cancelled") == 3


def test_s5_3_context_deadline_earlier_than_plan_timeout_wins(engine):
    import uuid

    from support import PLAN_ID

    now = int(time.time() * 1000)
    plan = make_plan({"action": "control.sleep", "payload": {"ms": 60_000}}, timeout_ms=60_000)
    # deadline_ms − started_at ≥ plan.timeout_ms is required, so started_at lies in the past
    ctx = {"execution_id": str(uuid.uuid4()), "plan_id": PLAN_ID, "started_at": now - 59_700,
           "deadline_ms": now + 300, "environment": ENV}
    r = engine.run(plan, ctx)
    assert r.error.error_code is ErrorCode.PLAN_TIMEOUT


def test_s5_3_a_step_that_prints_megabytes_is_capped_not_stuck(engine):
    argv = ["python3", "-c", "import sys; sys.stdout.write('x' * (20 * 1024 * 1024))"]
    r = engine.run(make_plan({"action": "shell.run", "payload": {"argv": argv}}), environment=ENV)
    assert r.status is PlanStatus.SUCCESS
    out = r.step_results[0].output
    assert len(out["stdout"]) <= 1024 * 1024 + 16
    assert out.get("stdout_truncated") is True
