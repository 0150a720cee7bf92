"""JSON Schema (Draft 2020-12) exports of the plan, context and result documents (§1, §2, §3).

Each schema is one self-contained document (only ``#/$defs/...`` references), suitable to hand to a
language model as a structured-output schema. The plan and context schemas are written by hand
from the same constants the validator uses, so a schema validator agrees with
:mod:`ordinance.contract.validate` on every *structural* rule; the cross-field rules (uniqueness,
references, acyclicity, timeouts relative to the plan, payload size, ...) are validator-only
(``docs/rules.md`` and the ``schema`` column of :mod:`ordinance.contract.rules` list them).
The result schema is generated from the :class:`~ordinance.contract.models.PlanResult` model the
engine serializes, with every emitted field required and ``R-RESULT-ERROR`` added as ``if``/``then``.

Two differences are inherent to JSON Schema and documented rather than papered over: JSON Schema
counts ``1.0`` as an integer (the contract does not), and some schema validators (python-jsonschema
among them) run ``pattern`` with a regex engine whose ``$`` also matches before a final newline.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from .models import (
    ACTION_PATTERN,
    DEFAULT_MAX_PARALLEL,
    DEFAULT_PLAN_TIMEOUT_MS,
    MAX_SAFE_INT,
    MAX_TIMEOUT_MS,
    PlanResult,
    REQUIREMENT_PATTERN,
    UUID4_PATTERN,
)

__all__ = ["plan_schema", "context_schema", "result_schema", "SCHEMAS", "DRAFT_2020_12"]

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_ID_BASE = "urn:ordinance:schema:v1:"
#: NAME_PATTERN with its control-character range written as regex escapes (portable and readable).
_NAME_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
_POINTER_PATTERN = r"^(/([^~/]|~[01])*)*$"
_NON_EMPTY_POINTER_PATTERN = r"^(/([^~/]|~[01])*)+$"


def _uuid4(description: str) -> dict[str, Any]:
    return {"$ref": "#/$defs/uuid4", "description": description}


def _int(minimum: int, maximum: int, description: str, default: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum, "maximum": maximum, "description": description}
    if default is not None:
        schema["default"] = default
    return schema


def _common_defs() -> dict[str, Any]:
    return {
        "uuid4": {
            "type": "string", "minLength": 36, "maxLength": 36, "pattern": UUID4_PATTERN,
            "description": "A UUID v4 in lowercase canonical form.",
        },
        "action": {
            "type": "string", "pattern": ACTION_PATTERN,
            "description": "Dotted lowercase segments; the part before the first dot is the domain.",
        },
        "name": {
            "type": "string", "minLength": 1, "maxLength": 200, "pattern": _NAME_PATTERN,
            "description": "1–200 characters, no control characters.",
        },
        "timeout_ms": _int(1, MAX_TIMEOUT_MS, "Milliseconds; never more than the plan's timeout_ms."),
        "payload": {"type": "object", "description": "The action's input (opaque here); canonical size ≤ 1 MiB."},
    }


def _plan_defs() -> dict[str, Any]:
    defs = _common_defs()
    defs["retry_policy"] = {
        "title": "RetryPolicy",
        "description": "§1.2. Delay before attempt n (n ≥ 2) = min(initial_delay_ms × backoff_multiplier^(n−2), "
                       "max_delay_ms); max_delay_ms must be ≥ initial_delay_ms.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "max_attempts": _int(1, 100, "Attempts in all, the first included.", 3),
            "initial_delay_ms": _int(0, 3_600_000, "Delay before the second attempt.", 200),
            "backoff_multiplier": {"type": "number", "minimum": 1.0, "maximum": 10.0, "default": 2.0,
                                   "description": "Growth factor of the delay."},
            "max_delay_ms": _int(0, 3_600_000, "Cap of the delay; ≥ initial_delay_ms.", 10_000),
            "retry_on": {
                "type": "array", "minItems": 1, "uniqueItems": True,
                "items": {"enum": ["STEP_FAILED", "STEP_TIMEOUT"]},
                "default": ["STEP_FAILED", "STEP_TIMEOUT"],
                "description": "Error codes that are retried.",
            },
        },
    }
    defs["binding"] = {
        "title": "Binding",
        "description": "§1.3: a value taken from a transitive dependency's output.",
        "type": "object",
        "additionalProperties": False,
        "required": ["step", "pointer"],
        "properties": {
            "step": _uuid4("The source step: a transitive dependency of the binding step."),
            "pointer": {"type": "string", "pattern": _POINTER_PATTERN,
                        "description": "JSON Pointer (RFC 6901) into the source step's output; \"\" is all of it."},
        },
    }
    defs["compensation"] = {
        "title": "Compensation",
        "description": "§7.4: the action that undoes the step when a failed plan is compensated.",
        "type": "object",
        "additionalProperties": False,
        "required": ["action"],
        "properties": {
            "action": {"$ref": "#/$defs/action"},
            "payload": {"$ref": "#/$defs/payload"},
            "timeout_ms": {"$ref": "#/$defs/timeout_ms"},
        },
    }
    defs["step"] = {
        "title": "PlanStep",
        "description": "§1.1: one action invocation.",
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "action"],
        "properties": {
            "id": _uuid4("Unique within the plan."),
            "action": {"$ref": "#/$defs/action"},
            "payload": {"$ref": "#/$defs/payload", "default": {}},
            "depends_on": {
                "type": "array", "uniqueItems": True, "items": {"$ref": "#/$defs/uuid4"}, "default": [],
                "description": "Ids of other steps of this plan that must succeed first (acyclic).",
            },
            "on_failure": {"enum": ["halt", "skip", "retry"], "default": "halt",
                           "description": "What a failure of this step does (§5.2)."},
            "retry_policy": {"$ref": "#/$defs/retry_policy",
                             "description": "Only when on_failure is \"retry\"; the default policy otherwise."},
            "timeout_ms": {"$ref": "#/$defs/timeout_ms",
                           "description": "Default 30 000, or the plan's timeout_ms if smaller."},
            "inputs": {
                "type": "object",
                "propertyNames": {"type": "string", "pattern": _NON_EMPTY_POINTER_PATTERN},
                "additionalProperties": {"$ref": "#/$defs/binding"},
                "description": "Data bindings: a JSON Pointer into this step's payload → its source.",
            },
            "compensation": {"$ref": "#/$defs/compensation"},
            "name": {"$ref": "#/$defs/name"},
        },
        "if": {"required": ["retry_policy"]},
        "then": {"required": ["on_failure"], "properties": {"on_failure": {"const": "retry"}}},
    }
    return defs


@lru_cache(maxsize=None)
def _plan_schema() -> dict[str, Any]:
    return {
        "$schema": DRAFT_2020_12,
        "$id": _ID_BASE + "plan",
        "title": "Ordinance plan (contract v1)",
        "description": "§1: a declarative plan of steps with dependencies. Validator-only rules (unique step ids, "
                       "dependencies that exist, no cycle, binding sources that are transitive dependencies, "
                       "step timeouts within the plan's, payload size) are not expressible here.",
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "version", "name", "created_at", "steps", "context_requirements"],
        "properties": {
            "id": _uuid4("The plan's id."),
            "version": _int(1, MAX_SAFE_INT, "The plan's revision."),
            "name": {"$ref": "#/$defs/name"},
            "created_at": _int(1, MAX_SAFE_INT, "Unix epoch milliseconds."),
            "steps": {"type": "array", "minItems": 1, "maxItems": 1024, "items": {"$ref": "#/$defs/step"}},
            "context_requirements": {
                "type": "array", "minItems": 1, "uniqueItems": True,
                "items": {"type": "string", "pattern": REQUIREMENT_PATTERN},
                "description": "Keys every execution context's environment must hold.",
            },
            "timeout_ms": _int(1, MAX_TIMEOUT_MS, "The plan's deadline after it starts.", DEFAULT_PLAN_TIMEOUT_MS),
            "max_parallel": _int(1, 256, "Steps running at once, at most.", DEFAULT_MAX_PARALLEL),
            "compensate_on_failure": {"type": "boolean", "default": True,
                                      "description": "Undo succeeded steps when the plan fails (§7.4)."},
            "description": {"type": "string", "maxLength": 4000},
            "metadata": {"type": "object", "description": "Opaque to the engine."},
        },
        "$defs": _plan_defs(),
    }


@lru_cache(maxsize=None)
def _context_schema() -> dict[str, Any]:
    defs = _common_defs()
    return {
        "$schema": DRAFT_2020_12,
        "$id": _ID_BASE + "context",
        "title": "Ordinance execution context (contract v1)",
        "description": "§2: one execution of a plan. Validator-only: plan_id equals the plan's id, deadline_ms − "
                       "started_at ≥ the plan's timeout_ms, environment holds every context requirement.",
        "type": "object",
        "additionalProperties": False,
        "required": ["execution_id", "plan_id", "started_at", "deadline_ms", "environment"],
        "properties": {
            "execution_id": _uuid4("The execution's audit id; never reused for another plan."),
            "plan_id": _uuid4("The id of the plan to execute."),
            "started_at": _int(1, MAX_SAFE_INT, "Unix epoch milliseconds."),
            "deadline_ms": _int(1, MAX_SAFE_INT, "Absolute deadline, Unix epoch milliseconds."),
            "environment": {"type": "object", "description": "Opaque; must hold every context requirement."},
            "principal": {
                "type": "object",
                "additionalProperties": False,
                "required": ["user_id", "token"],
                "properties": {
                    "user_id": {"type": "string", "minLength": 1, "maxLength": 200},
                    "token": {"type": "string", "minLength": 1, "maxLength": 512},
                },
                "description": "Who runs the plan (§6.1).",
            },
            "trigger_type": {"enum": ["manual", "api", "schedule", "event", "nested"], "default": "manual"},
        },
        "$defs": {"uuid4": defs["uuid4"]},
    }


def _tidy_model_schema(node: Any) -> None:
    """Post-process pydantic's schema: every emitted field required, no auto-generated property titles."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            node["required"] = list(props)
            for prop in props.values():
                if isinstance(prop, dict):
                    prop.pop("title", None)
        for value in node.values():
            _tidy_model_schema(value)
    elif isinstance(node, list):
        for value in node:
            _tidy_model_schema(value)


@lru_cache(maxsize=None)
def _result_schema() -> dict[str, Any]:
    generated = PlanResult.model_json_schema(mode="serialization", ref_template="#/$defs/{model}")
    _tidy_model_schema(generated)
    defs = generated.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": DRAFT_2020_12,
        "$id": _ID_BASE + "result",
        "title": "Ordinance plan result (contract v1)",
        "description": "§3: the terminal outcome of an execution. error is an ExecutionError when status is "
                       "partial or failure, null when success (R-RESULT-ERROR).",
    }
    generated.pop("title", None)
    generated.pop("description", None)
    schema.update(generated)
    schema["allOf"] = [{
        "if": {"properties": {"status": {"const": "success"}}, "required": ["status"]},
        "then": {"properties": {"error": {"type": "null"}}},
        "else": {"properties": {"error": {"$ref": "#/$defs/ExecutionError"}}},
    }]
    schema["$defs"] = defs
    return schema


def plan_schema() -> dict[str, Any]:
    """The Draft 2020-12 schema of a v1 plan document (a fresh copy)."""
    return copy.deepcopy(_plan_schema())


def context_schema() -> dict[str, Any]:
    """The Draft 2020-12 schema of an execution context document (a fresh copy)."""
    return copy.deepcopy(_context_schema())


def result_schema() -> dict[str, Any]:
    """The Draft 2020-12 schema of a PlanResult document (a fresh copy)."""
    return copy.deepcopy(_result_schema())


SCHEMAS = {"plan": plan_schema, "context": context_schema, "result": result_schema}
