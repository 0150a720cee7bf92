"""Inline actions (ActionSpec.inline): async actions that finish without suspending run in the scheduler's turn.

They must behave exactly like any other attempt — statuses, errors, receipts, journal kinds (§5.1 R-DETERMINISM,
§5.2, §5.3, §7.1, §8) — and a run made of them must still give the event loop its turns (the plan deadline,
lease renewal, sinks and other executions keep running).
"""

from __future__ import annotations

import asyncio
import contextvars
import time

import pytest

from ordinance.actions import ActionFailure, default_registry
from ordinance.contract import ErrorCode, PlanStatus
from ordinance.engine import Engine
from support import ENV, journal_kinds, make_plan, sid

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("inline_test_var", default="engine")


@pytest.fixture
def registry():
    reg = default_registry.copy()
    stopped: list[str] = []

    @reg.action("t.inline.set_var", inline=True)
    async def set_var(payload, ctx):
        VAR.set("action")
        return {"var": VAR.get()}

    @reg.action("t.inline.block", inline=True)
    async def block(payload, ctx):
        time.sleep(payload["ms"] / 1000)  # never suspends: a late result must be discarded
        return {"late": True}

    @reg.action("t.inline.suspends", inline=True)
    async def suspends(payload, ctx):  # declared inline, but suspends: goes on in a task from where it stopped
        try:
            await asyncio.sleep(payload["ms"] / 1000)
            await asyncio.sleep(0)
            return {"slept": payload["ms"], "task": asyncio.current_task() is not None}
        finally:
            stopped.append(ctx.step_id)

    @reg.action("t.inline.raises", inline=True)
    async def raises(payload, ctx):
        raise ValueError("bad value")

    @reg.action("t.inline.not_json", inline=True)
    async def not_json(payload, ctx):
        return {"x": float("nan")}

    @reg.action("t.inline.refuses", inline=True)
    async def refuses(payload, ctx):
        raise ActionFailure("no", recoverable=True, details={"why": "test"})

    reg.stopped = stopped  # type: ignore[attr-defined]
    return reg


@pytest.fixture
def inline_engine(store, workspace, registry):
    return Engine(store, workspace=str(workspace), registry=registry)


def test_builtin_control_actions_are_inline_and_others_are_not():
    assert {n for n in default_registry.names() if default_registry.get(n).inline} == {
        "control.noop", "control.echo", "control.fail"}


def test_inline_flag_is_ignored_for_sync_functions():
    reg = default_registry.copy()

    @reg.action("t.inline.sync", inline=True)
    def sync_action(payload, ctx):
        return {}

    assert reg.get("t.inline.sync").inline is False  # sync code always runs in the killable pool (§5.3)


def test_s5_1_inline_run_has_the_same_statuses_and_journal_kinds_as_task_run(store, workspace):
    """R-DETERMINISM: the same plan through inline and through task-run actions gives the same record kinds."""
    plan = make_plan({"action": "control.noop"}, {"action": "control.echo", "payload": {"value": [1, "a"]}},
                     {"action": "control.fail", "payload": {"fail_attempts": 1}, "on_failure": "retry",
                      "retry_policy": {"max_attempts": 2, "initial_delay_ms": 0}, "depends_on": [sid(1)]},
                     {"action": "control.fail", "on_failure": "skip"},
                     {"action": "control.echo", "payload": {"value": 2}, "depends_on": [sid(4)]})
    inline = Engine(store, workspace=str(workspace)).run(plan, environment=ENV)
    reg = default_registry.copy()
    for name in ("control.noop", "control.echo", "control.fail"):
        from dataclasses import replace
        reg.register(replace(reg.get(name), inline=False), replace=True)
    tasked = Engine(store, workspace=str(workspace), registry=reg).run(plan, environment=ENV)
    assert inline.status is tasked.status is PlanStatus.PARTIAL
    assert [s.status for s in inline.step_results] == [s.status for s in tasked.step_results]
    assert [s.attempts for s in inline.step_results] == [s.attempts for s in tasked.step_results] == [1, 1, 2, 1, 0]
    assert [s.output for s in inline.step_results] == [s.output for s in tasked.step_results]
    assert journal_kinds(store, inline.execution_id) == journal_kinds(store, tasked.execution_id)
    assert all(s.receipt is not None for s in inline.step_results if s.attempts)


def test_s5_3_inline_result_past_the_timeout_is_discarded(inline_engine, store):
    r = inline_engine.run(make_plan({"action": "t.inline.block", "payload": {"ms": 150}, "timeout_ms": 50}),
                          environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert r.error.error_code is ErrorCode.STEP_TIMEOUT
    assert r.step_results[0].output is None
    assert "step.attempt_timed_out" in journal_kinds(store, r.execution_id)


def test_s5_3_inline_action_that_suspends_goes_on_in_a_task_and_is_stopped_at_its_timeout(inline_engine, registry):
    r = inline_engine.run(make_plan({"action": "t.inline.suspends", "payload": {"ms": 5}},
                                    {"action": "t.inline.suspends", "payload": {"ms": 60_000}, "timeout_ms": 100}),
                          environment=ENV)
    assert r.step_results[0].status.value == "succeeded"
    assert r.step_results[0].output == {"slept": 5, "task": True}
    assert r.step_results[1].status.value == "failed"
    assert r.error.error_code is ErrorCode.STEP_TIMEOUT
    assert registry.stopped == [sid(1), sid(2)]  # the second one was cancelled: its finally ran


@pytest.mark.parametrize("action, code, text", [
    ("t.inline.raises", ErrorCode.STEP_FAILED, "ValueError: bad value"),
    ("t.inline.not_json", ErrorCode.STEP_FAILED, "ValueError"),
    ("t.inline.refuses", ErrorCode.STEP_FAILED, "no"),
])
def test_s5_2_inline_failures_are_step_failures(inline_engine, action, code, text):
    r = inline_engine.run(make_plan({"action": action}), environment=ENV)
    assert r.status is PlanStatus.FAILURE
    assert r.error.error_code is code
    assert text in r.error.message
    assert r.step_results[0].receipt is not None and r.step_results[0].receipt.status == "failed"


def test_inline_action_context_variables_stay_with_the_action(inline_engine):
    r = inline_engine.run(make_plan({"action": "t.inline.set_var"}), environment=ENV)
    assert r.step_results[0].output == {"var": "action"}
    assert VAR.get() == "engine"


def test_s5_3_plan_deadline_stops_a_long_chain_of_inline_steps(engine):
    """The deadline timer fires even though no inline step ever gives the loop a turn of its own."""
    steps = [{"action": "control.noop", **({"depends_on": [sid(i - 1)]} if i > 1 else {})} for i in range(1, 1025)]
    t0 = time.monotonic()
    r = engine.run(make_plan(*steps, timeout_ms=30), environment=ENV)
    assert r.status is PlanStatus.FAILURE, r.status
    assert r.error.error_code is ErrorCode.PLAN_TIMEOUT
    assert 0 < r.steps_executed < 1024
    assert time.monotonic() - t0 < 20


def test_other_tasks_run_during_a_chain_of_inline_steps(engine):
    """Sinks, lease renewal and other executions share the loop: a ticker keeps ticking through the run."""
    steps = [{"action": "control.noop", **({"depends_on": [sid(i - 1)]} if i > 1 else {})} for i in range(1, 401)]

    async def main() -> tuple[int, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        r = await engine.run_async(make_plan(*steps), environment=ENV)
        stop.set()
        await t
        assert r.status is PlanStatus.SUCCESS
        return before, ticks

    before, after = asyncio.run(main())
    assert after - before >= 5  # the run took well over 5 ms of scheduler time, so the loop turned


def test_s5_0_first_attempt_takes_the_payload_admission_parsed_and_retries_parse_afresh(store, workspace):
    """A static payload is parsed once at admission (§5.0) and handed to the first attempt; a retry gets its own."""
    reg = default_registry.copy()
    class Box(__import__("pydantic").BaseModel):
        items: list[int]

    @reg.action("t.payload.mutates", input=Box, inline=True)
    async def mutates(payload: Box, ctx):
        payload.items.append(ctx.attempt)  # an action that mutates what it was given
        if ctx.attempt < 3:
            raise ActionFailure("again", recoverable=True)
        return {"items": payload.items}

    r = Engine(store, workspace=str(workspace), registry=reg).run(make_plan(
        {"action": "t.payload.mutates", "payload": {"items": [0]}, "on_failure": "retry",
         "retry_policy": {"max_attempts": 3, "initial_delay_ms": 0}}), environment=ENV)
    assert r.status is PlanStatus.SUCCESS
    assert r.step_results[0].output == {"items": [0, 3]}  # attempt 3 saw none of attempts 1 and 2's changes


def test_s5_3_an_inline_action_s_first_stretch_counts_against_its_timeout(store, workspace):
    reg = default_registry.copy()

    @reg.action("t.inline.slow_start", inline=True)
    async def slow_start(payload, ctx):
        time.sleep(0.15)  # 150 ms before the first suspension, of a 200 ms limit
        await asyncio.sleep(0.15)
        return {"done": True}

    r = Engine(store, workspace=str(workspace), registry=reg).run(
        make_plan({"action": "t.inline.slow_start", "timeout_ms": 200}), environment=ENV)
    assert r.error is not None and r.error.error_code is ErrorCode.STEP_TIMEOUT  # 300 ms in all: stopped


def test_s5_3_a_task_run_action_that_blocks_the_loop_past_its_limit_has_its_result_discarded(store, workspace):
    """The same rule without inline: the timer could not run while the action blocked, the result is still late."""
    reg = default_registry.copy()

    @reg.action("t.task.blocks")
    async def blocks(payload, ctx):
        await asyncio.sleep(0)
        time.sleep(0.15)
        return {"late": True}

    assert reg.get("t.task.blocks").inline is False
    r = Engine(store, workspace=str(workspace), registry=reg).run(
        make_plan({"action": "t.task.blocks", "timeout_ms": 50}), environment=ENV)
    assert r.error is not None and r.error.error_code is ErrorCode.STEP_TIMEOUT
    assert r.step_results[0].output is None
