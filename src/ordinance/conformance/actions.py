"""Actions the conformance suite registers on a private copy of the action registry.

They are never added to :data:`ordinance.actions.default_registry`. Module-level functions, so the
synchronous one can be sent to the engine's worker processes by reference.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from ..actions.registry import ActionContext, ActionFailure, ActionRegistry

__all__ = ["conformance_registry", "gauge_peak", "counter_value", "open_gate"]

_lock = threading.Lock()
_gauges: dict[str, list[int]] = {}  # key -> [current, peak]
_counters: dict[str, int] = {}
_gates: dict[str, threading.Event] = {}


def gauge_peak(key: str) -> int:
    with _lock:
        return _gauges.get(key, [0, 0])[1]


def counter_value(key: str) -> int:
    with _lock:
        return _counters.get(key, 0)


def _gate(key: str) -> threading.Event:
    with _lock:
        return _gates.setdefault(key, threading.Event())


def open_gate(key: str) -> None:
    _gate(key).set()


async def env_poke(payload: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Try to change the environment view, at the top level and inside a nested value; report what worked."""
    out: dict[str, Any] = {}
    try:
        ctx.environment["INJECTED"] = "by an action"  # type: ignore[index]
        out["top_level_mutable"] = True
    except TypeError:
        out["top_level_mutable"] = False
    nested = ctx.environment.get(payload.get("key", "cfg"))
    try:
        if isinstance(nested, dict):
            nested["k"] = "changed by an action"
            out["nested_mutable"] = True
        elif isinstance(nested, list):
            nested.append("changed by an action")
            out["nested_mutable"] = True
        else:
            out["nested_mutable"] = False
    except TypeError:
        out["nested_mutable"] = False
    return out


async def env_view(payload: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Return the environment as the action sees it, with the Python type of each value."""
    import copy

    env = copy.deepcopy(dict(ctx.environment))
    return {"env": env, "types": {k: json_type(v) for k, v in ctx.environment.items()}}


def pid(payload: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """A plain (synchronous) action: returns the id of the process that ran it."""
    return {"pid": os.getpid()}


async def gauge(payload: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Count concurrent attempts under ``payload["key"]`` while sleeping ``payload["ms"]``."""
    key = str(payload.get("key"))
    with _lock:
        g = _gauges.setdefault(key, [0, 0])
        g[0] += 1
        g[1] = max(g[1], g[0])
    try:
        await asyncio.sleep(int(payload.get("ms", 30)) / 1000)
    finally:
        with _lock:
            _gauges[key][0] -= 1
    return {}


async def counter(payload: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Idempotent-by-key action with a visible side effect: a counter under ``payload["key"]``."""
    key = str(payload.get("key"))
    with _lock:
        _counters[key] = _counters.get(key, 0) + 1
        n = _counters[key]
    return {"count": n}


async def costly(payload: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    return {}


async def privileged(payload: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    return {}


async def long_error(payload: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    raise ActionFailure("x" * 5000, recoverable=False)


async def wait_gate(payload: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Wait (cancellably) until :func:`open_gate` is called for ``payload["key"]``, at most ``payload["max_ms"]``."""
    gate = _gate(str(payload.get("key")))
    end = time.monotonic() + int(payload.get("max_ms", 10_000)) / 1000
    while not gate.is_set() and time.monotonic() < end:
        await asyncio.sleep(0.005)
    return {"opened": gate.is_set()}


_REGISTRY: ActionRegistry | None = None


def conformance_registry() -> ActionRegistry:
    """A copy of the default registry (built-ins included) plus the ``conformance.*`` actions."""
    global _REGISTRY
    with _lock:
        if _REGISTRY is None:
            import ordinance.actions  # noqa: F401 - registers the built-ins
            from ..actions.registry import default_registry

            reg = default_registry.copy()
            reg.action("conformance.env_poke", replace=True)(env_poke)
            reg.action("conformance.env_view", replace=True)(env_view)
            reg.action("conformance.pid", replace=True)(pid)
            reg.action("conformance.gauge", replace=True)(gauge)
            reg.action("conformance.counter", idempotent=True, replace=True)(counter)
            reg.action("conformance.costly", cost_usd=0.6, replace=True)(costly)
            reg.action("conformance.privileged", roles=("deployer",), replace=True)(privileged)
            reg.action("conformance.long_error", replace=True)(long_error)
            reg.action("conformance.wait_gate", replace=True)(wait_gate)
            _REGISTRY = reg
        return _REGISTRY.copy()


def json_type(value: object) -> str:
    """The JSON type of a value (a read-only view of an object is still an object: R-CTX-OPAQUE forbids coercion,
    not a read-only wrapper)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__
