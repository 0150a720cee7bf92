"""Every example validates and runs (CONTRACT §12: examples are part of the documentation)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ordinance.contract.validate import validate_plan
from support import REPO

EXAMPLES = {
    "quickstart.json": {"RELEASE": "1.4.0"},
    "release-pipeline.json": {"release_channel": "stable"},
    "deploy-with-retries.json": {"deploy_env": "staging", "artifact_url": "https://example.invalid/a.tgz"},
    "nested-deploy.json": {"deploy_env": "staging"},
}


def test_every_example_plan_is_listed_here():
    assert {p.name for p in (REPO / "examples").glob("*.json")} == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_validates_and_runs(name, tmp_path, sqlite_store):
    from ordinance.engine import Engine

    doc = json.loads((REPO / "examples" / name).read_text())
    assert validate_plan(doc) == []
    ws = tmp_path / "ws"
    ws.mkdir()
    result = Engine(sqlite_store, workspace=str(ws)).run(doc, environment=EXAMPLES[name])
    assert result.status.value in ("success", "partial"), result.error


def test_custom_action_example_runs():
    r = subprocess.run([sys.executable, str(REPO / "examples" / "custom_action.py")], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"success: 4/4 steps" in r.stdout and b"replayed" in r.stdout
