"""``control.*``: actions for wiring, tests and hard-stop checks (CONTRACT §12).

None of them touches declared state, so they have no probe (their receipts carry no state hashes)
and no compensation.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import Field, JsonValue, StrictBool, StrictInt, StrictStr

from ..registry import ActionContext, ActionFailure, default_registry
from ._common import Payload

__all__ = ["Echo", "Fail", "Noop", "Sleep", "Spin", "echo", "fail", "noop", "sleep", "spin"]

_MAX_MS = 86_400_000  # the longest step timeout (§1.1); nothing can usefully wait longer


class Noop(Payload):
    pass


class Echo(Payload):
    NULLABLE = frozenset({"value"})
    value: JsonValue


class Sleep(Payload):
    ms: StrictInt = Field(ge=0, le=_MAX_MS)


class Spin(Payload):
    ms: StrictInt = Field(ge=0, le=_MAX_MS)


class Fail(Payload):
    message: StrictStr | None = Field(default=None, max_length=2000)
    fail_attempts: StrictInt | None = Field(default=None, ge=0)
    recoverable: StrictBool = True


@default_registry.action("control.noop", input=Noop, read_only=True, inline=True)
async def noop(payload: Noop, ctx: ActionContext) -> dict[str, Any]:
    """Do nothing; output ``{}``."""
    return {}


@default_registry.action("control.echo", input=Echo, read_only=True, inline=True)
async def echo(payload: Echo, ctx: ActionContext) -> dict[str, Any]:
    """Return ``{"value": value}`` unchanged."""
    return {"value": payload.value}


@default_registry.action("control.sleep", input=Sleep, read_only=True)
async def sleep(payload: Sleep, ctx: ActionContext) -> dict[str, Any]:
    """Sleep ``ms`` milliseconds without blocking the engine (cancellable at the deadline)."""
    await asyncio.sleep(payload.ms / 1000)
    return {"slept_ms": payload.ms}


@default_registry.action("control.spin", input=Spin, read_only=True)
def spin(payload: Spin, ctx: ActionContext) -> dict[str, Any]:
    """Burn CPU for ``ms`` milliseconds in synchronous Python.

    Deliberately a plain function: the engine runs it in a killable worker process (§5.3), which is
    what the hard-stop tests and benchmarks exercise.
    """
    end = time.perf_counter() + payload.ms / 1000
    while time.perf_counter() < end:
        pass
    return {"spun_ms": payload.ms}


@default_registry.action("control.fail", input=Fail, read_only=True, inline=True)
async def fail(payload: Fail, ctx: ActionContext) -> dict[str, Any]:
    """Fail attempts ``1..fail_attempts`` of the step (every attempt when absent), then succeed.

    Output on success: ``{"attempt": n}``. The failure's ``recoverable`` flag comes from the payload.
    """
    n = ctx.attempt
    if payload.fail_attempts is None or n <= payload.fail_attempts:
        raise ActionFailure(
            payload.message or f"control.fail: attempt {n} failed as requested",
            recoverable=payload.recoverable,
            details={"attempt": n, "fail_attempts": payload.fail_attempts},
        )
    return {"attempt": n}
