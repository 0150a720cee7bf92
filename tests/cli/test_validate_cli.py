"""§12 `ordinance validate` / `ordinance schema` through a real subprocess: exit codes 0/1/2, the --json shape,
stdin, unreadable files, bad flags, --context and the legacy dialect."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / "examples" / "release-pipeline.json"


def run(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ORDINANCE_STORE"}
    env["NO_COLOR"] = "1"
    proc = subprocess.run([sys.executable, "-m", "ordinance.cli.app", *args], input=stdin, capture_output=True,
                          cwd=cwd, env=env, timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def release_doc() -> dict:
    return json.loads(RELEASE.read_text())


def write(tmp_path: Path, name: str, doc) -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def context_for(plan: dict, **changes) -> dict:
    ctx = {"execution_id": "e0e0e0e0-0000-4000-9000-000000000001", "plan_id": plan["id"], "started_at": 1000,
           "deadline_ms": 1000 + plan.get("timeout_ms", 3_600_000),
           "environment": {k: "x" for k in plan["context_requirements"]}}
    ctx.update(changes)
    return ctx


@pytest.fixture
def bad_plan(tmp_path) -> Path:
    doc = release_doc()
    doc["steps"][1]["timeout_ms"] = 86_400_001
    doc["steps"][2]["action"] = "Shell.Run"
    doc["steps"][0]["depends_on"] = [doc["steps"][4]["id"]]
    return write(tmp_path, "release.json", doc)


def test_valid_plan_exits_0_with_a_readable_line_R_12():
    proc = run("validate", str(RELEASE))
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout and "release-pipeline.json" in proc.stdout and "sha256:" in proc.stdout
    assert proc.stderr == ""


def test_invalid_plan_exits_1_and_lists_violations_like_a_compiler_R_12(bad_plan):
    proc = run("validate", str(bad_plan))
    assert proc.returncode == 1
    out = proc.stdout
    assert "error[R-STEP-TIMEOUT]" in out and "error[R-STEP-ACTION]" in out and "error[R-PLAN-ACYCLIC]" in out
    assert f"{bad_plan}#/steps/1/timeout_ms" in out
    assert "value: 86400001" in out and 'value: "Shell.Run"' in out
    assert out.strip().splitlines()[-1] == f"3 violations in {bad_plan}"
    assert "\x1b[" not in out  # no colour when stdout is not a terminal
    assert "Traceback" not in proc.stderr


def test_long_values_are_truncated_in_the_excerpt(tmp_path):
    doc = release_doc()
    doc["name"] = "n" * 300
    proc = run("validate", str(write(tmp_path, "p.json", doc)))
    (line,) = [ln for ln in proc.stdout.splitlines() if "value:" in ln]
    assert line.endswith("…") and len(line.split("value: ", 1)[1]) <= 60


def test_json_output_shape_R_12(bad_plan):
    proc = run("validate", str(bad_plan), "--json")
    assert proc.returncode == 1
    body = json.loads(proc.stdout)  # stdout holds the JSON alone
    assert set(body) == {"valid", "violations"} and body["valid"] is False
    assert [set(v) for v in body["violations"]] == [{"path", "rule", "message"}] * 3
    assert [(v["path"], v["rule"]) for v in body["violations"]] == [
        ("/steps/0/depends_on", "R-PLAN-ACYCLIC"), ("/steps/1/timeout_ms", "R-STEP-TIMEOUT"),
        ("/steps/2/action", "R-STEP-ACTION")]
    ok = run("validate", str(RELEASE), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"valid": True, "violations": []}


def test_stdin_dash_R_12():
    proc = run("validate", "-", "--json", stdin=RELEASE.read_bytes())
    assert proc.returncode == 0 and json.loads(proc.stdout)["valid"] is True
    bad = run("validate", "-", stdin=b'{"id": 1, "id": 2}')
    assert bad.returncode == 1 and "error[R-JSON]" in bad.stdout and "1 violation in <stdin>" in bad.stdout


def test_hygiene_failure_is_reported_alone_R_JSON(tmp_path):
    path = tmp_path / "nan.json"
    path.write_bytes(b'{"id": NaN}')
    body = json.loads(run("validate", str(path), "--json").stdout)
    assert [(v["path"], v["rule"]) for v in body["violations"]] == [("", "R-JSON")]


@pytest.mark.parametrize("target", ["missing.json", "."])
def test_unreadable_file_exits_2_with_one_line_R_12(tmp_path, target):
    proc = run("validate", target, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot read plan file" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read a file without permission")
def test_permission_denied_exits_2(tmp_path):
    path = write(tmp_path, "secret.json", release_doc())
    path.chmod(0)
    proc = run("validate", str(path))
    assert proc.returncode == 2 and "permission denied" in proc.stderr


def test_unreadable_context_file_exits_2(tmp_path):
    proc = run("validate", str(RELEASE), "--context", str(tmp_path / "nope.json"))
    assert proc.returncode == 2 and "cannot read context file" in proc.stderr


@pytest.mark.parametrize("args", [["--dialect", "v2"], ["--bogus"], [], ["a.json", "b.json"]])
def test_bad_flags_exit_2_without_traceback_R_12(args):
    proc = run("validate", *([str(RELEASE)] if args and args[0].startswith("--") else []), *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip()


def test_context_violations_are_tagged_with_their_document(tmp_path):
    plan = release_doc()
    ctx = context_for(plan, environment={}, trigger_type="cron")
    proc = run("validate", str(RELEASE), "--context", str(write(tmp_path, "ctx.json", ctx)), "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["violations"] == [
        {"path": "/environment/release_channel", "rule": "R-CTX-REQS",
         "message": 'required context key "release_channel" is missing', "document": "context"},
        {"path": "/trigger_type", "rule": "R-CTX-TRIGGER",
         "message": 'must be one of "manual", "api", "schedule", "event", "nested"', "document": "context"},
    ]
    human = run("validate", str(RELEASE), "--context", str(tmp_path / "ctx.json"))
    assert "ctx.json#/trigger_type" in human.stdout and "2 violations in" in human.stdout


def test_valid_context_exits_0(tmp_path):
    ctx = write(tmp_path, "ctx.json", context_for(release_doc()))
    proc = run("validate", str(RELEASE), "--context", str(ctx))
    assert proc.returncode == 0 and "context" in proc.stdout
    both_stdin = run("validate", "-", "--context", "-")
    assert both_stdin.returncode == 2


LEGACY = {
    "user_id": "alice", "token_hash": "sha256:" + "0f" * 32, "trigger_type": "api",
    "steps": [{"domain": "control", "method": "echo", "parameters": {"value": 1}},
              {"domain": "control", "method": "echo", "parameters": {"value": 0}}],
    "data_bindings": [{"source_step": 0, "source_path": "/value", "target_step": 1, "target_path": "/value"}],
}


def test_legacy_dialect_valid_and_invalid_R_10(tmp_path):
    ok = run("validate", str(write(tmp_path, "legacy.json", LEGACY)), "--dialect", "legacy")
    assert ok.returncode == 0, ok.stdout
    bad = copy.deepcopy(LEGACY)
    bad["data_bindings"][0]["source_step"] = 1
    bad["extra"] = True
    proc = run("validate", str(write(tmp_path, "bad.json", bad)), "--dialect", "legacy", "--json")
    assert proc.returncode == 1
    assert [(v["path"], v["rule"]) for v in json.loads(proc.stdout)["violations"]] == [
        ("/data_bindings/0/source_step", "R-LEGACY-BIND-ORDER"), ("/extra", "R-LEGACY-EXTRA")]
    # a v1 plan is not a legacy document, and a legacy document is not a v1 plan
    assert run("validate", str(RELEASE), "--dialect", "legacy").returncode == 1
    assert run("validate", str(tmp_path / "legacy.json")).returncode == 1


def test_legacy_converted_plan_violations_are_tagged(tmp_path):
    doc = copy.deepcopy(LEGACY)
    doc["steps"][1]["parameters"] = {"value": "x" * (1024 * 1024)}
    proc = run("validate", str(write(tmp_path, "big.json", doc)), "--dialect", "legacy", "--json")
    assert proc.returncode == 1
    (v,) = json.loads(proc.stdout)["violations"]
    assert (v["path"], v["rule"], v["document"]) == ("/steps/1/payload", "R-STEP-PAYLOAD", "converted")


def test_help_is_complete_R_12():
    proc = run("validate", "--help")
    assert proc.returncode == 0
    for word in ("PLAN", "--context", "--dialect", "--json", "legacy", "Exit codes", "0 valid", "1 invalid", "2 usage"):
        assert word in proc.stdout, word
    schema_help = run("schema", "--help")
    assert schema_help.returncode == 0 and "plan|context|result" in schema_help.stdout


@pytest.mark.parametrize("kind", ["plan", "context", "result"])
def test_schema_command_prints_the_schema(kind):
    from ordinance.contract.schema import SCHEMAS

    proc = run("schema", kind)
    assert proc.returncode == 0 and json.loads(proc.stdout) == SCHEMAS[kind]()


def test_schema_command_rejects_unknown_kind():
    proc = run("schema", "journal")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_permission_denied_branch_in_process(monkeypatch, capsys, tmp_path):
    """Root reads anything, so the EACCES branch is also exercised in-process with a failing open()."""
    import typer

    from ordinance.cli import options, validate_cmd

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(options, "open", denied, raising=False)  # the shared reader behind every command
    with pytest.raises(typer.Exit) as info:
        validate_cmd._read(str(tmp_path / "plan.json"), "plan")
    assert info.value.exit_code == 2
    err = capsys.readouterr().err
    assert "permission denied" in err and len(err.strip().splitlines()) == 1
