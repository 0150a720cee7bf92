"""Documents for the contract tests: a full-featured valid plan, a valid context, a valid legacy plan."""

from __future__ import annotations

import copy
from typing import Any

PLAN_ID = "0a1b2c3d-0000-4000-8000-00000000abcd"
EXEC_ID = "e0e0e0e0-0000-4000-9000-000000000001"


def uid(n: int) -> str:
    """A valid lowercase UUID v4 numbered ``n``."""
    return f"{n:08x}-1111-4111-a111-111111111111"


S0, S1, S2, S3 = uid(1), uid(2), uid(3), uid(4)

_PLAN: dict[str, Any] = {
    "id": PLAN_ID,
    "version": 2,
    "name": "contract test plan ✓",
    "created_at": 1_700_000_000_000,
    "context_requirements": ["TARGET", "region.name"],
    "timeout_ms": 600_000,
    "max_parallel": 4,
    "compensate_on_failure": True,
    "description": "every optional field is used somewhere",
    "metadata": {"anything": {"goes": [1, 2.5, None]}, "unknown/key": True},
    "steps": [
        {"id": S0, "action": "control.echo", "payload": {"value": {"version": "1.2.3"}}, "name": "source"},
        {"id": S1, "action": "shell.run", "depends_on": [S0],
         "payload": {"argv": ["true"], "env": {}},
         "inputs": {"/env/VERSION": {"step": S0, "pointer": "/value/version"}},
         "on_failure": "retry",
         "retry_policy": {"max_attempts": 5, "initial_delay_ms": 100, "backoff_multiplier": 1.5,
                          "max_delay_ms": 1000, "retry_on": ["STEP_FAILED"]},
         "timeout_ms": 60_000},
        {"id": S2, "action": "fs.write", "depends_on": [S1],
         "payload": {"path": "out.txt", "content": "x", "extra keys": {"are": "fine in payload"}},
         "inputs": {"/content": {"step": S0, "pointer": ""}},
         "on_failure": "skip",
         "compensation": {"action": "fs.delete", "payload": {"path": "out.txt"}, "timeout_ms": 5_000}},
        {"id": S3, "action": "control.noop", "depends_on": [S2, S0], "on_failure": "halt"},
    ],
}

_CONTEXT: dict[str, Any] = {
    "execution_id": EXEC_ID,
    "plan_id": PLAN_ID,
    "started_at": 1_700_000_000_000,
    "deadline_ms": 1_700_000_000_000 + 600_000,
    "environment": {"TARGET": "prod", "region.name": "eu", "extra": {"opaque": [1]}},
    "principal": {"user_id": "alice", "token": "t0k3n"},
    "trigger_type": "api",
}

_LEGACY: dict[str, Any] = {
    "user_id": "alice",
    "token_hash": "sha256:" + "ab" * 32,
    "trigger_type": "manual",
    "steps": [
        {"domain": "control", "method": "echo", "parameters": {"value": {"v": 1}}},
        {"domain": "control", "method": "echo", "parameters": {"value": None}},
        {"domain": "fs", "method": "write", "parameters": {"path": "a.txt", "content": ""}},
    ],
    "data_bindings": [
        {"source_step": 0, "source_path": "/value/v", "target_step": 1, "target_path": "/value"},
        {"source_step": 0, "source_path": "", "target_step": 2, "target_path": "/content"},
    ],
}


def valid_plan() -> dict[str, Any]:
    return copy.deepcopy(_PLAN)


def minimal_plan() -> dict[str, Any]:
    return {"id": PLAN_ID, "version": 1, "name": "m", "created_at": 1,
            "steps": [{"id": S0, "action": "control.noop"}], "context_requirements": ["TARGET"]}


def valid_context() -> dict[str, Any]:
    return copy.deepcopy(_CONTEXT)


def valid_legacy() -> dict[str, Any]:
    return copy.deepcopy(_LEGACY)


def chain_plan(n: int, *, bind: bool = True) -> dict[str, Any]:
    """``n`` steps, each depending on (and binding from) the previous one."""
    ids = [uid(i + 1) for i in range(n)]
    steps: list[dict[str, Any]] = []
    for i, step_id in enumerate(ids):
        step: dict[str, Any] = {"id": step_id, "action": "control.echo", "payload": {"value": i}}
        if i:
            step["depends_on"] = [ids[i - 1]]
            if bind:
                step["inputs"] = {"/value": {"step": ids[0], "pointer": "/value"}}
        steps.append(step)
    return {"id": PLAN_ID, "version": 1, "name": "chain", "created_at": 1, "steps": steps,
            "context_requirements": ["TARGET"]}


def pairs(violations: list[Any]) -> list[tuple[str, str]]:
    """``[(path, rule), ...]`` of a violation list."""
    return [(v.path, v.rule) for v in violations]
