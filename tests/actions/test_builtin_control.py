"""``control.*`` built-in actions (CONTRACT §12), including ``control.spin`` hard-stopped in the pool (§5.3)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from ordinance.actions import ActionFailure, default_registry, payload_errors
from ordinance.contract.models import CompensationType
from ordinance.engine.pool import WorkerPool


def test_s12_control_actions_are_registered_with_the_contract_names() -> None:
    for name in ("control.noop", "control.echo", "control.sleep", "control.spin", "control.fail"):
        spec = default_registry.get(name)
        assert spec is not None and spec.probe is None
        assert spec.compensation_type is CompensationType.NONE
        assert spec.is_async is (name != "control.spin")  # spin is synchronous: it runs in the killable pool


def test_s12_noop_and_echo(call: Callable[..., Any]) -> None:
    assert call("control.noop", {}) == {}
    for value in (None, 0, "x", [1, {"a": None}], {"deep": {"er": [True, 1.5]}}):
        assert call("control.echo", {"value": value}) == {"value": value}


def test_s12_sleep_and_spin_report_what_they_did(call: Callable[..., Any]) -> None:
    assert call("control.sleep", {"ms": 5}) == {"slept_ms": 5}
    assert call("control.spin", {"ms": 5}) == {"spun_ms": 5}


@pytest.mark.parametrize(("name", "payload"), [
    ("control.noop", {"x": 1}),
    ("control.echo", {}),
    ("control.echo", {"value": 1, "extra": 2}),
    ("control.sleep", {"ms": -1}),
    ("control.sleep", {"ms": 1.0}),
    ("control.sleep", {"ms": True}),
    ("control.sleep", {"ms": "5"}),
    ("control.sleep", {}),
    ("control.spin", {"ms": None}),
    ("control.fail", {"fail_attempts": -1}),
    ("control.fail", {"fail_attempts": False}),
    ("control.fail", {"recoverable": "yes"}),
    ("control.fail", {"message": 5}),
    ("control.fail", {"message": None}),
])
def test_s5_0_s12_bad_static_payloads_are_invalid(name: str, payload: dict[str, Any]) -> None:
    spec = default_registry.get(name)
    assert spec is not None
    assert payload_errors(spec, payload), payload


def test_s12_fail_fails_the_first_attempts_then_succeeds(call: Callable[..., Any]) -> None:
    for attempt in (1, 2):
        with pytest.raises(ActionFailure) as info:
            call("control.fail", {"fail_attempts": 2, "message": "boom"}, attempt=attempt)
        assert info.value.message == "boom" and info.value.recoverable is True
    assert call("control.fail", {"fail_attempts": 2}, attempt=3) == {"attempt": 3}
    assert call("control.fail", {"fail_attempts": 0}, attempt=1) == {"attempt": 1}


def test_s12_fail_without_fail_attempts_always_fails_and_honours_recoverable(call: Callable[..., Any]) -> None:
    for attempt in (1, 5, 100):
        with pytest.raises(ActionFailure) as info:
            call("control.fail", {"recoverable": False}, attempt=attempt)
        assert info.value.recoverable is False
        assert str(attempt) in info.value.message


def test_s5_3_s12_spin_in_the_worker_pool_is_hard_stopped(make_ctx: Callable[..., Any]) -> None:
    spec = default_registry.get("control.spin")
    assert spec is not None

    async def main() -> None:
        async with WorkerPool(1) as pool:
            ctx = make_ctx(action="control.spin")
            assert await pool.run(spec.func, spec.parse_payload({"ms": 10}), ctx, 10) == {"spun_ms": 10}
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await pool.run(spec.func, spec.parse_payload({"ms": 100_000}), ctx, 0.1)
            assert time.monotonic() - started < 10

    asyncio.run(main())


def test_s5_3_s12_sleep_is_cancellable(call: Callable[..., Any], make_ctx: Callable[..., Any]) -> None:
    spec = default_registry.get("control.sleep")
    assert spec is not None

    async def main() -> None:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(spec.func(spec.parse_payload({"ms": 100_000}), make_ctx()), 0.1)
        assert time.monotonic() - started < 10

    asyncio.run(main())
