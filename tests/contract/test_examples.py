"""The example plans validate, use only §12 built-in actions with their contract payloads, and use fixed ids."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ordinance.contract.validate import parse_plan, validate_plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MINE = ["release-pipeline.json", "deploy-with-retries.json", "nested-deploy.json"]
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

#: §12 built-in actions → (required payload keys, optional payload keys)
BUILTINS = {
    "control.noop": (set(), set()),
    "control.echo": ({"value"}, set()),
    "control.sleep": ({"ms"}, set()),
    "control.spin": ({"ms"}, set()),
    "control.fail": (set(), {"message", "fail_attempts", "recoverable"}),
    "shell.run": ({"argv"}, {"cwd", "env", "stdin", "allow_nonzero"}),
    "fs.write": ({"path", "content"}, {"mode"}),
    "fs.read": ({"path"}, set()),
    "fs.delete": ({"path"}, set()),
    "fs.mkdir": ({"path"}, set()),
    "http.request": ({"method", "url"}, {"headers", "json", "body", "expect_status"}),
    "execute_plan": (set(), {"plan", "plan_ref", "environment", "accept_partial"}),
}


def _check_builtins(plan: dict) -> None:
    for step in plan["steps"]:
        assert step["action"] in BUILTINS, step["action"]
        required, optional = BUILTINS[step["action"]]
        keys = set(step.get("payload", {})) | {p.split("/")[1] for p in step.get("inputs", {})}
        assert required <= keys <= required | optional, (step["action"], keys)
        if "compensation" in step:
            assert step["compensation"]["action"] in BUILTINS


@pytest.mark.parametrize("name", MINE)
def test_example_is_valid_and_uses_builtins(name):
    raw = (EXAMPLES / name).read_bytes()
    assert validate_plan(raw) == []
    plan = json.loads(raw)
    parse_plan(raw)
    _check_builtins(plan)
    ids = [plan["id"], *(s["id"] for s in plan["steps"])]
    assert all(UUID4.fullmatch(i) for i in ids)
    assert isinstance(plan["created_at"], int)


def test_examples_show_the_features_they_are_named_for():
    release = json.loads((EXAMPLES / "release-pipeline.json").read_text())
    assert any(s.get("inputs") for s in release["steps"]) and {"shell.run", "control.echo", "fs.write"} <= {
        s["action"] for s in release["steps"]}
    deploy = json.loads((EXAMPLES / "deploy-with-retries.json").read_text())
    assert any(s.get("retry_policy") for s in deploy["steps"])
    assert any(s.get("on_failure") == "skip" for s in deploy["steps"])
    nested = json.loads((EXAMPLES / "nested-deploy.json").read_text())
    (outer,) = [s for s in nested["steps"] if s["action"] == "execute_plan"]
    child = outer["payload"]["plan"]
    assert validate_plan(child) == []
    _check_builtins(child)
    assert set(child["context_requirements"]) <= set(outer["payload"]["environment"])


def test_the_plan_shown_in_docs_contract_md_is_valid():
    text = (EXAMPLES.parent / "docs" / "contract.md").read_text(encoding="utf-8")
    block = text.split("```json\n", 1)[1].split("```", 1)[0]
    plan = json.loads(block)
    assert validate_plan(plan) == []
    _check_builtins(plan)
