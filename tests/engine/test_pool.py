"""The killable worker pool for synchronous actions (CONTRACT §5.3): real processes, real SIGKILL."""

from __future__ import annotations

import asyncio
import faulthandler
import os
import signal
import time
import types
from pathlib import Path
from typing import Any

import pytest
from support import proc_stats

from ordinance.actions import ActionContext, ActionFailure
from ordinance.actions.builtins.control import Spin, spin
from ordinance.engine.pool import PoolClosed, WorkerCrashed, WorkerPool

pytestmark = pytest.mark.timeout(60)


# Module-level functions: sent to the workers by reference.

def echo_pid(payload: Any, ctx: Any) -> dict[str, Any]:
    return {"payload": payload, "pid": os.getpid(), "step": ctx.step_id, "env": dict(ctx.environment)}


def raise_failure(payload: Any, ctx: Any) -> None:
    raise ActionFailure("refused", recoverable=False, details={"why": payload})


def raise_value_error(payload: Any, ctx: Any) -> None:
    raise ValueError(f"bad value {payload}")


def return_unpicklable(payload: Any, ctx: Any) -> Any:
    return lambda: None


def exit_hard(payload: Any, ctx: Any) -> None:
    os._exit(payload)


def kill_self(payload: Any, ctx: Any) -> None:
    faulthandler.disable()  # pytest's fault handler (inherited by the fork) would print a traceback
    os.kill(os.getpid(), payload)


def sleep_then(payload: dict[str, Any], ctx: Any) -> Any:
    time.sleep(payload["s"])
    if "marker" in payload:
        Path(payload["marker"]).write_text("ran to the end")
    return payload.get("value", os.getpid())


async def async_function(payload: Any, ctx: Any) -> Any:
    await asyncio.sleep(0)
    return payload * 2


def make_ctx(**kw: Any) -> ActionContext:
    base = dict(execution_id="e", plan_id="p", step_id="s1", attempt=1, action="test.sync", workspace="/tmp",
                environment=types.MappingProxyType({"K": "V"}), deadline_ms=0,
                runtime=object())  # neither is picklable as is: the pool sends ctx.for_worker()
    base.update(kw)
    return ActionContext(**base)  # type: ignore[arg-type]


def gone(pid: int) -> bool:
    """The process no longer exists at all (killed and reaped: not even a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def children_of_this_process() -> list[int]:
    me = str(os.getpid())
    out = []
    for pid, fields in proc_stats():
        if fields[1] == me:
            out.append(pid)
    return out


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --------------------------------------------------------------------------- round trips

def test_s5_3_result_round_trip_runs_in_another_process() -> None:
    async def main() -> None:
        async with WorkerPool(2) as pool:
            out = await pool.run(echo_pid, {"a": [1, 2]}, make_ctx(), timeout_s=10)
            assert out["payload"] == {"a": [1, 2]}
            assert out["pid"] != os.getpid() and out["pid"] in pool.pids
            assert out["step"] == "s1" and out["env"] == {"K": "V"}
            assert await pool.run(spin, Spin(ms=1), make_ctx(), timeout_s=10) == {"spun_ms": 1}
            assert await pool.run(async_function, 21, make_ctx(), timeout_s=10) == 42
    run(main())


def test_s5_3_action_failure_round_trip_keeps_message_recoverable_and_details() -> None:
    async def main() -> None:
        async with WorkerPool(1) as pool:
            with pytest.raises(ActionFailure) as info:
                await pool.run(raise_failure, "policy", make_ctx(), timeout_s=10)
            assert (info.value.message, info.value.recoverable, info.value.details) == ("refused", False,
                                                                                        {"why": "policy"})
            with pytest.raises(ActionFailure) as info:
                await pool.run(raise_value_error, 7, make_ctx(), timeout_s=10)
            assert info.value.message == "ValueError: bad value 7" and info.value.recoverable
            assert not isinstance(info.value, WorkerCrashed)
            assert await pool.run(echo_pid, 1, make_ctx(), timeout_s=10)  # the worker survived both
    run(main())


def test_s5_3_unpicklable_result_and_unpicklable_function_fail_clearly() -> None:
    async def main() -> None:
        async with WorkerPool(1) as pool:
            pids = pool.pids
            with pytest.raises(ActionFailure, match="not picklable") as info:
                await pool.run(return_unpicklable, None, make_ctx(), timeout_s=10)
            assert info.value.recoverable is False
            with pytest.raises(ActionFailure, match="cannot be sent"):
                await pool.run(lambda p, c: p, None, make_ctx(), timeout_s=10)
            assert pool.pids == pids  # no worker was lost
    run(main())


# --------------------------------------------------------------------------- hard stops

def test_s5_3_spin_past_its_timeout_is_killed_and_the_pool_keeps_serving() -> None:
    async def main() -> None:
        async with WorkerPool(1) as pool:
            (victim,) = pool.pids
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await pool.run(spin, Spin(ms=60_000), make_ctx(), timeout_s=0.2)
            assert time.monotonic() - started < 10  # stopped, not run to its 60 s end
            assert gone(victim)  # SIGKILLed and reaped
            out = await pool.run(echo_pid, "next", make_ctx(), timeout_s=10)
            assert out["payload"] == "next" and out["pid"] != victim
            assert len(pool.pids) == 1
    run(main())


def test_s5_3_a_late_result_is_never_returned_and_the_late_side_effect_never_happens(tmp_path: Path) -> None:
    marker = tmp_path / "late"

    async def main() -> None:
        async with WorkerPool(1) as pool:
            with pytest.raises(asyncio.TimeoutError):
                await pool.run(sleep_then, {"s": 0.5, "value": "LATE", "marker": str(marker)}, make_ctx(),
                               timeout_s=0.1)
            await asyncio.sleep(0.8)  # well past when the late result would have been ready
            assert await pool.run(sleep_then, {"s": 0, "value": "fresh"}, make_ctx(), timeout_s=10) == "fresh"
            assert await pool.run(sleep_then, {"s": 0, "value": "again"}, make_ctx(), timeout_s=10) == "again"
    run(main())
    assert not marker.exists()


def test_s5_3_cancellation_kills_the_worker_too() -> None:
    async def main() -> None:
        async with WorkerPool(1) as pool:
            (victim,) = pool.pids
            task = asyncio.ensure_future(pool.run(spin, Spin(ms=60_000), make_ctx(), timeout_s=60))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert gone(victim)
            assert (await pool.run(echo_pid, 1, make_ctx(), timeout_s=10))["pid"] != victim
    run(main())


def test_s5_3_zero_timeout_never_starts_the_call(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    async def main() -> None:
        async with WorkerPool(1) as pool:
            with pytest.raises(asyncio.TimeoutError):
                await pool.run(sleep_then, {"s": 0, "marker": str(marker)}, make_ctx(), timeout_s=0)
    run(main())
    assert not marker.exists()


# --------------------------------------------------------------------------- crashes

@pytest.mark.parametrize(("func", "arg", "text"), [
    (exit_hard, 3, "exited with code 3"),
    (kill_self, signal.SIGSEGV, "SIGSEGV"),
    (kill_self, signal.SIGKILL, "SIGKILL"),
])
def test_s5_3_a_worker_that_dies_raises_worker_crashed_and_is_replaced(func: Any, arg: Any, text: str) -> None:
    async def main() -> None:
        async with WorkerPool(2) as pool:
            before = set(pool.pids)
            with pytest.raises(WorkerCrashed, match=text) as info:
                await pool.run(func, arg, make_ctx(), timeout_s=10)
            assert isinstance(info.value, ActionFailure) and info.value.recoverable
            crashed = int(str(info.value).split()[2])
            assert crashed in before and gone(crashed)
            await asyncio.sleep(0.05)  # the replacement starts in the background
            assert len(pool.pids) == 2 and crashed not in pool.pids
            results = await asyncio.gather(*(pool.run(echo_pid, i, make_ctx(), timeout_s=10) for i in range(4)))
            assert [r["payload"] for r in results] == [0, 1, 2, 3]
    run(main())


def test_s5_3_a_worker_killed_while_idle_is_replaced_before_use() -> None:
    async def main() -> None:
        async with WorkerPool(1) as pool:
            (pid,) = pool.pids
            os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.1)
            out = await pool.run(echo_pid, "ok", make_ctx(), timeout_s=10)
            assert out["payload"] == "ok" and out["pid"] != pid
    run(main())


# --------------------------------------------------------------------------- concurrency and lifecycle

def test_s5_3_more_calls_than_workers_wait_for_a_free_worker() -> None:
    async def main() -> None:
        async with WorkerPool(2) as pool:
            pids = set(pool.pids)
            results = await asyncio.gather(
                *(pool.run(sleep_then, {"s": 0.1, "value": i}, make_ctx(), timeout_s=20) for i in range(6)))
            assert results == list(range(6))
            assert set(pool.pids) == pids  # nobody was killed or replaced
    run(main())


def test_s5_3_waiting_for_a_worker_counts_against_the_deadline(tmp_path: Path) -> None:
    marker = tmp_path / "never"

    async def main() -> None:
        async with WorkerPool(1) as pool:
            (pid,) = pool.pids
            busy = asyncio.ensure_future(pool.run(sleep_then, {"s": 0.6, "value": "first"}, make_ctx(),
                                                  timeout_s=20))
            await asyncio.sleep(0.05)
            with pytest.raises(asyncio.TimeoutError):
                await pool.run(sleep_then, {"s": 0, "marker": str(marker)}, make_ctx(), timeout_s=0.2)
            assert await busy == "first"  # the busy worker was not the one stopped
            assert pool.pids == [pid]
    run(main())
    assert not marker.exists()


def test_s5_3_close_leaves_no_child_process_and_fails_calls_in_flight() -> None:
    async def main() -> list[int]:
        pool = WorkerPool(3)
        await pool.start()
        pids = pool.pids
        assert set(pids) <= set(children_of_this_process())
        inflight = asyncio.ensure_future(pool.run(spin, Spin(ms=60_000), make_ctx(), timeout_s=60))
        await asyncio.sleep(0.1)
        await pool.close()
        with pytest.raises(PoolClosed):
            await inflight
        with pytest.raises(PoolClosed):
            await pool.run(echo_pid, 1, make_ctx(), timeout_s=1)
        return pids

    pids = run(main())
    assert all(gone(pid) for pid in pids)
    assert children_of_this_process() == []
