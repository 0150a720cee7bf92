"""Ordinance: execute declarative plans under a binding contract.

    from ordinance import Engine
    result = Engine(workspace=".").run(plan_dict, environment={"TARGET": "staging"})
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "__version__", "Engine", "action", "ActionContext", "ActionFailure", "Plan", "PlanResult", "ExecutionContext",
    "ErrorCode", "CallbackSink", "JsonlSink", "WebhookSink", "Envelope",
]

_LAZY = {
    "Engine": ("ordinance.engine", "Engine"),
    "CallbackSink": ("ordinance.engine", "CallbackSink"),
    "JsonlSink": ("ordinance.engine", "JsonlSink"),
    "WebhookSink": ("ordinance.engine", "WebhookSink"),
    "action": ("ordinance.actions", "action"),
    "ActionContext": ("ordinance.actions", "ActionContext"),
    "ActionFailure": ("ordinance.actions", "ActionFailure"),
    "Plan": ("ordinance.contract", "Plan"),
    "PlanResult": ("ordinance.contract", "PlanResult"),
    "ExecutionContext": ("ordinance.contract", "ExecutionContext"),
    "ErrorCode": ("ordinance.contract", "ErrorCode"),
    "Envelope": ("ordinance.governance", "Envelope"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'ordinance' has no attribute {name!r}")
