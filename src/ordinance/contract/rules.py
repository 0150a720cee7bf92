"""The table of validation rules: rule id → contract clause, one-line description, schema coverage.

Every rule id the validators in :mod:`ordinance.contract.validate` and :mod:`ordinance.contract.legacy`
report is listed here (``docs/rules.md`` is the prose version of this table).

``schema`` says how much of the rule the exported JSON Schema (:mod:`ordinance.contract.schema`) can
express: ``"full"`` (a schema validator enforces all of it), ``"partial"`` (the structural part; the
rest is cross-field and validator-only, see ``schema_gap``) or ``"none"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Rule", "RULES", "PLAN_RULES", "CONTEXT_RULES", "LEGACY_RULES", "rule"]

Coverage = Literal["full", "partial", "none"]
Document = Literal["plan", "context", "legacy"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One validation rule."""

    id: str
    clause: str
    documents: tuple[Document, ...]
    description: str
    schema: Coverage
    schema_gap: str = ""


_TABLE: tuple[Rule, ...] = (
    # §0.6 / §1.4 -------------------------------------------------------------------------------
    Rule("R-JSON", "§0.6", ("plan", "context", "legacy"),
         "Input hygiene: duplicate key, NaN/Infinity, lone surrogate, invalid UTF-8, nesting > 64, "
         "size > 8 MiB or a non-object top level; reported alone at path \"\".",
         "partial", "only the non-object top level; the rest is below JSON Schema's data model"),
    Rule("R-NO-EXTRA", "§1 §2", ("plan", "context"),
         "No field beyond those the contract names, at any level except inside payload, metadata and environment.",
         "full"),
    # §1 Plan -----------------------------------------------------------------------------------
    Rule("R-PLAN-ID", "§1", ("plan",), "Plan id: required string, lowercase UUID v4.", "full"),
    Rule("R-PLAN-VERSION", "§1", ("plan",), "Plan version: required integer, 1 ≤ version ≤ 2^53−1.", "full"),
    Rule("R-PLAN-NAME", "§1", ("plan",), "Plan name: required string of 1–200 characters, no control characters.",
         "full"),
    Rule("R-PLAN-CREATED", "§1", ("plan",), "created_at: required integer, 0 < created_at ≤ 2^53−1 (epoch ms).",
         "full"),
    Rule("R-PLAN-STEPS", "§1", ("plan",), "steps: required array of 1–1024 step objects.", "full"),
    Rule("R-PLAN-REQS", "§1", ("plan",),
         "context_requirements: required non-empty array of unique strings matching ^[A-Za-z_][A-Za-z0-9_.-]{0,127}$.",
         "full"),
    Rule("R-PLAN-TIMEOUT", "§1", ("plan",), "timeout_ms: optional integer, 1–86 400 000.", "full"),
    Rule("R-PLAN-PARALLEL", "§1", ("plan",), "max_parallel: optional integer, 1–256.", "full"),
    Rule("R-PLAN-COMPENSATE", "§1 §7.4", ("plan",), "compensate_on_failure: optional boolean.", "full"),
    Rule("R-PLAN-DESCRIPTION", "§1", ("plan",), "description: optional string of at most 4000 characters.", "full"),
    Rule("R-PLAN-METADATA", "§1", ("plan",), "metadata: optional object (opaque to the engine).", "full"),
    Rule("R-PLAN-ACYCLIC", "§1.1", ("plan",),
         "The dependency graph is acyclic; a violation names one cycle, in order, at the first step's depends_on.",
         "none", "a graph property"),
    # §1.1 PlanStep -----------------------------------------------------------------------------
    Rule("R-STEP-ID", "§1.1", ("plan",), "Step id: required string, lowercase UUID v4.", "full"),
    Rule("R-STEP-UNIQUE", "§1.1", ("plan",), "Step ids are unique within the plan (reported at each repeat).",
         "none", "uniqueness of a field across array items"),
    Rule("R-STEP-ACTION", "§1.1", ("plan",),
         "Step action: required string matching ^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$.",
         "full"),
    Rule("R-STEP-PAYLOAD", "§1.1", ("plan",), "payload: optional object whose canonical form is at most 1 MiB.",
         "partial", "the 1 MiB canonical size"),
    Rule("R-STEP-DEPS", "§1.1", ("plan",),
         "depends_on: optional array of unique step ids, each naming another step of this plan.",
         "partial", "that each id names a step of this plan, and not the step itself"),
    Rule("R-STEP-ONFAIL", "§1.1", ("plan",), "on_failure: optional, one of \"halt\", \"skip\", \"retry\".", "full"),
    Rule("R-STEP-RETRY", "§1.1 §1.2", ("plan",),
         "retry_policy: only when on_failure is \"retry\"; an object with max_attempts 1–100, initial_delay_ms "
         "0–3 600 000, backoff_multiplier 1.0–10.0, max_delay_ms ≤ 3 600 000 and ≥ initial_delay_ms, retry_on a "
         "non-empty unique subset of STEP_FAILED/STEP_TIMEOUT.",
         "partial", "max_delay_ms ≥ initial_delay_ms (defaults included)"),
    Rule("R-STEP-TIMEOUT", "§1.1", ("plan",),
         "Step timeout_ms: optional integer 1–86 400 000, ≤ the plan's timeout_ms.",
         "partial", "≤ the plan's (possibly defaulted) timeout_ms"),
    Rule("R-STEP-INPUTS", "§1.3", ("plan",),
         "inputs: optional object; keys are non-empty JSON Pointers into the payload; each value exactly "
         "{\"step\": step id, \"pointer\": JSON Pointer}; the source step exists.",
         "partial", "that the source step exists"),
    Rule("R-BIND-REF", "§1.3", ("plan",),
         "A binding's source step is a transitive dependency of the binding step (never the step itself).",
         "none", "a graph property"),
    Rule("R-STEP-COMP", "§1.1 §7.4", ("plan",),
         "compensation: optional object {action, payload?, timeout_ms?} with the step's action, payload and "
         "timeout rules.",
         "partial", "the payload's 1 MiB size and timeout_ms ≤ the plan's timeout_ms"),
    Rule("R-STEP-NAME", "§1.1", ("plan",), "Step name: optional string of 1–200 characters, no control characters.",
         "full"),
    # §2 ExecutionContext -----------------------------------------------------------------------
    Rule("R-CTX-ID", "§2", ("context",), "execution_id: required string, lowercase UUID v4.", "full"),
    Rule("R-CTX-PLAN", "§2", ("context",), "plan_id: required string equal to the plan's id.",
         "partial", "equality with the plan's id"),
    Rule("R-CTX-STARTED", "§2", ("context",), "started_at: required integer, 0 < started_at ≤ 2^53−1.", "full"),
    Rule("R-CTX-DEADLINE", "§2", ("context",),
         "deadline_ms: required integer ≤ 2^53−1, > started_at, and deadline_ms − started_at ≥ the plan's timeout_ms.",
         "partial", "the comparisons with started_at and the plan's timeout_ms"),
    Rule("R-CTX-ENV", "§2", ("context",), "environment: required object (opaque, R-CTX-OPAQUE).", "full"),
    Rule("R-CTX-REQS", "§2", ("context",),
         "environment holds every key of the plan's context_requirements (a miss is CONTEXT_MISSING).",
         "none", "depends on the plan"),
    Rule("R-CTX-PRINCIPAL", "§2 §6.1", ("context",),
         "principal: optional object exactly {user_id: 1–200 characters, token: 1–512 characters}.", "full"),
    Rule("R-CTX-TRIGGER", "§2", ("context",),
         "trigger_type: optional, one of manual, api, schedule, event, nested.", "full"),
    # §10 legacy dialect ------------------------------------------------------------------------
    Rule("R-LEGACY-EXTRA", "§10", ("legacy",), "No field beyond the dialect's, at any level except inside parameters.",
         "none"),
    Rule("R-LEGACY-USER", "§10", ("legacy",), "user_id: required string of 1–200 characters.", "none"),
    Rule("R-LEGACY-TOKEN", "§10 §6.1", ("legacy",),
         "token_hash: required string \"sha256:\" + 64 lowercase hex digits (how the token store keeps tokens).",
         "none"),
    Rule("R-LEGACY-TRIGGER", "§10 §2", ("legacy",),
         "trigger_type: required, one of manual, api, schedule, event, nested.", "none"),
    Rule("R-LEGACY-STEPS", "§10", ("legacy",), "steps: required array of 1–1024 step objects.", "none"),
    Rule("R-LEGACY-STEP", "§10", ("legacy",),
         "Each step has exactly domain (string), method (string) and parameters (object).", "none"),
    Rule("R-LEGACY-ACTION", "§10 §1.1", ("legacy",),
         "domain is one action segment ^[a-z][a-z0-9_]*$ and domain + \".\" + method is a valid action.", "none"),
    Rule("R-LEGACY-BINDINGS", "§10 §1.3", ("legacy",),
         "data_bindings: optional array of objects with exactly source_step/target_step (step indices) and "
         "source_path/target_path (JSON Pointers; target non-empty); one binding per target path.", "none"),
    Rule("R-LEGACY-BIND-ORDER", "§10", ("legacy",),
         "Every binding has source_step < target_step (no forward or circular reference).", "none"),
)

RULES: dict[str, Rule] = {r.id: r for r in _TABLE}
PLAN_RULES = tuple(r.id for r in _TABLE if "plan" in r.documents)
CONTEXT_RULES = tuple(r.id for r in _TABLE if "context" in r.documents)
LEGACY_RULES = tuple(r.id for r in _TABLE if "legacy" in r.documents)


def rule(rule_id: str) -> Rule:
    """The table entry for ``rule_id`` (``KeyError`` if unknown)."""
    return RULES[rule_id]
