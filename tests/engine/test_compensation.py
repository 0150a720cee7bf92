"""Compensation of a failure (CONTRACT §7.3, §7.4) with real files."""

from __future__ import annotations

from ordinance.contract import PlanStatus
from support import ENV, journal_kinds, make_plan, sid


def test_s7_4_failure_compensates_in_reverse_completion_order_and_verifies(engine, store, workspace):
    (workspace / "config.txt").write_text("old\n")
    plan = make_plan(
        {"action": "fs.write", "payload": {"path": "config.txt", "content": "new\n"}},
        {"action": "fs.write", "payload": {"path": "created.txt", "content": "hello"}, "depends_on": [sid(1)]},
        {"action": "control.fail", "payload": {"message": "deploy failed"}, "depends_on": [sid(2)]},
    )
    r = engine.run(plan, environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert [s.status.value for s in r.step_results] == ["compensated", "compensated", "failed"]
    assert [s.compensation_status.value for s in r.step_results[:2]] == ["verified", "verified"]
    assert (workspace / "config.txt").read_text() == "old\n"
    assert not (workspace / "created.txt").exists()
    comp = r.error.details["compensation"]
    assert comp["verified"] == [sid(2), sid(1)]  # reverse completion order
    assert r.step_results[0].receipt.compensation_verified is True
    kinds = journal_kinds(store, r.execution_id)
    assert kinds.count("step.compensated") == 2


def test_s7_4_compensate_on_failure_false_leaves_changes(engine, workspace):
    plan = make_plan(
        {"action": "fs.write", "payload": {"path": "x.txt", "content": "x"}},
        {"action": "control.fail", "depends_on": [sid(1)]},
        compensate_on_failure=False,
    )
    r = engine.run(plan, environment=ENV)
    assert (workspace / "x.txt").exists()
    assert r.step_results[0].status.value == "succeeded"
    assert r.step_results[0].compensation_status.value == "skipped"


def test_s7_4_partial_is_never_compensated(engine, workspace):
    plan = make_plan(
        {"action": "fs.write", "payload": {"path": "x.txt", "content": "x"}},
        {"action": "control.fail", "on_failure": "skip"},
    )
    r = engine.run(plan, environment=ENV)
    assert r.status is PlanStatus.PARTIAL
    assert (workspace / "x.txt").read_text() == "x"
    assert r.step_results[0].status.value == "succeeded"


def test_s7_4_custom_compensation_that_does_not_restore_state_is_failed(engine, workspace):
    plan = make_plan(
        {"action": "fs.write", "payload": {"path": "x.txt", "content": "x"},
         "compensation": {"action": "control.noop"}},  # does not undo the write
        {"action": "control.fail", "depends_on": [sid(1)]},
    )
    r = engine.run(plan, environment=ENV)
    assert r.step_results[0].compensation_status.value == "failed"
    assert r.step_results[0].status.value == "succeeded"
    failed = r.error.details["compensation"]["failed"]
    assert failed[0]["step_id"] == sid(1) and "differs from the pre-state" in failed[0]["reason"]


def test_s7_4_custom_compensation_that_restores_state_is_verified(engine, workspace):
    plan = make_plan(
        {"action": "fs.write", "payload": {"path": "x.txt", "content": "x"},
         "compensation": {"action": "fs.delete", "payload": {"path": "x.txt"}}},
        {"action": "control.fail", "depends_on": [sid(1)]},
    )
    r = engine.run(plan, environment=ENV)
    assert r.step_results[0].compensation_status.value == "verified"
    assert r.step_results[0].receipt.compensation_type.value == "custom"
    assert not (workspace / "x.txt").exists()


def test_s7_1_fs_receipt_has_real_pre_and_post_state_hashes(engine, workspace):
    r = engine.run(make_plan({"action": "fs.write", "payload": {"path": "a.txt", "content": "A"}}), environment=ENV)
    rec = r.step_results[0].receipt
    assert rec.pre_state_hash != rec.post_state_hash
    assert rec.compensation_type.value in ("fs_restore", "fs_delete")
