"""The contract's pure data and rules: no I/O, no engine, no clock.

Names are loaded on first use (PEP 562), so importing one light module — ``ordinance.contract.canonical``,
say — does not pay for building every pydantic model (about 0.15 s), and a command such as
``ordinance list`` starts quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {}
for _module, _names in {
    "canonical": "ZERO_DIGEST canonical_bytes canonical_json digest digest_bytes plan_digest run_id",
    "errors": "ErrorCode ErrorSeverity",
    "models": "Binding CompensationSpec CompensationStatus CompensationType ExecutionContext ExecutionError OnFailure "
              "OperationReceipt Plan PlanResult PlanStatus PlanStep Principal RetryPolicy StepResult StepStatus "
              "TriggerType",
    "jsonio": "DocumentError load_document",
    "legacy": "convert_legacy validate_legacy",
    "schema": "context_schema plan_schema result_schema",
    "validate": "ContextInvalid PlanInvalid Violation parse_context parse_plan validate_context validate_plan",
}.items():
    for _name in _names.split():
        _EXPORTS[_name] = _module

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ordinance.contract' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
