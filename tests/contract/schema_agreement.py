"""Shared helpers for comparing the exported JSON Schema with the validator."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from ordinance.contract.schema import context_schema, plan_schema
from ordinance.contract.validate import Violation

PLAN_VALIDATOR = Draft202012Validator(plan_schema())  # format checking is off by default
CONTEXT_VALIDATOR = Draft202012Validator(context_schema())

#: Violation messages of the validator-only (cross-field) parts of partially expressible rules.
_CROSS_FIELD_MESSAGES = (
    "names no step of this plan",
    "a step cannot depend on itself",
    "must not exceed the plan's timeout_ms",
    "canonical form is",
    "must be ≥ initial_delay_ms",
    "must equal the plan's id",
    "must be after started_at",
    "must leave at least the plan's timeout_ms",
)
_CROSS_FIELD_RULES = {"R-STEP-UNIQUE", "R-PLAN-ACYCLIC", "R-BIND-REF", "R-CTX-REQS"}


def is_cross_field(v: Violation) -> bool:
    """Whether a violation is one JSON Schema cannot express (docs/rules.md, "validator-only")."""
    return v.rule in _CROSS_FIELD_RULES or any(m in v.message for m in _CROSS_FIELD_MESSAGES)


def schema_errors(validator: Draft202012Validator, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
