"""`ordinance run`, `show`, `list`, `recover` through the real CLI (CONTRACT §12)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from support import cli, make_plan, sid


@pytest.fixture
def here(tmp_path):
    (tmp_path / "ws").mkdir()
    return tmp_path


def write_plan(here, doc, name="plan.json"):
    p = here / name
    p.write_text(json.dumps(doc))
    return str(p)


def test_s12_run_exit_codes_success_partial_failure(here):
    ok = write_plan(here, make_plan({"action": "control.noop"}), "ok.json")
    part = write_plan(here, make_plan({"action": "control.noop"}, {"action": "control.fail", "on_failure": "skip"},
                                      id="22222222-2222-4222-8222-222222222222"), "part.json")
    bad = write_plan(here, make_plan({"action": "control.fail"}, id="33333333-3333-4333-8333-333333333333"), "bad.json")
    assert cli("run", ok, "--env", "TARGET=x", cwd=here).returncode == 0
    assert cli("run", part, "--env", "TARGET=x", cwd=here).returncode == 3
    assert cli("run", bad, "--env", "TARGET=x", cwd=here).returncode == 1
    assert (here / ".ordinance" / "ordinance.db").exists()  # the embedded default store


def test_s12_run_json_prints_the_plan_result_alone(here):
    p = write_plan(here, make_plan({"action": "control.echo", "payload": {"value": 42}}))
    r = cli("run", p, "--env", "TARGET=x", "--json", cwd=here)
    assert r.returncode == 0
    doc = json.loads(r.stdout)  # nothing else on stdout
    assert doc["status"] == "success" and doc["step_results"][0]["output"] == {"value": 42}
    for key in ("plan_id", "plan_version", "execution_id", "status", "started_at", "completed_at", "duration_ms",
                "steps_total", "steps_executed", "step_results", "plan_digest", "run_id", "error"):
        assert key in doc


def test_s12_run_without_json_shows_progress_step_by_step(here):
    p = write_plan(here, make_plan({"action": "control.noop", "name": "first"},
                                   {"action": "control.echo", "payload": {"value": 1}, "name": "second",
                                    "depends_on": [sid(1)]}))
    r = cli("run", p, "--env", "TARGET=x", cwd=here)
    out = r.stdout.decode()
    assert "first" in out and "second" in out and "succeeded" in out and "SUCCESS" in out
    assert out.index("first") < out.index("second")


def test_s12_run_usage_errors_exit_2_with_one_line(here):
    p = write_plan(here, make_plan({"action": "control.noop"}))
    for args in (("run", str(here / "missing.json")), ("run", str(here)), ("run", p, "--bogus"),
                 ("run", p, "--env", "NOEQUALS"), ("run", p, "--dialect", "v9"), ("run",),
                 ("run", p, "--context", str(here / "nope.json"))):
        r = cli(*args, cwd=here)
        assert r.returncode == 2, args
        assert b"Traceback" not in r.stderr
        assert r.stderr.decode().strip().splitlines()[0].startswith("error:"), (args, r.stderr)


def test_s12_run_with_context_file(here):
    now = int(time.time() * 1000)
    ctx = {"execution_id": "9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d", "plan_id": "11111111-1111-4111-8111-111111111111",
           "started_at": now, "deadline_ms": now + 3_600_000, "environment": {"TARGET": "prod"}}
    (here / "ctx.json").write_text(json.dumps(ctx))
    p = write_plan(here, make_plan({"action": "control.noop"}))
    r = cli("run", p, "--context", str(here / "ctx.json"), "--json", cwd=here)
    assert json.loads(r.stdout)["execution_id"] == ctx["execution_id"]
    again = cli("run", p, "--context", str(here / "ctx.json"), "--json", cwd=here)  # R-EXEC-ID-ONCE
    assert json.loads(again.stdout) == json.loads(r.stdout)


def test_s12_malformed_plan_is_a_failure_result_not_a_traceback(here):
    (here / "bad.json").write_bytes(b'{"id": 1, "id": 2}')
    r = cli("run", str(here / "bad.json"), "--json", cwd=here)
    assert r.returncode == 1 and b"Traceback" not in r.stderr
    assert json.loads(r.stdout)["error"]["error_code"] == "PLAN_INVALID"


def test_s12_show_and_list(here):
    p = write_plan(here, make_plan({"action": "control.noop"}))
    eid = json.loads(cli("run", p, "--env", "TARGET=x", "--json", cwd=here).stdout)["execution_id"]
    shown = cli("show", eid, "--json", cwd=here)
    assert shown.returncode == 0 and json.loads(shown.stdout)["execution_id"] == eid
    human = cli("show", eid, cwd=here).stdout.decode()
    assert "succeeded" in human and eid in human
    listed = json.loads(cli("list", "--json", cwd=here).stdout)
    assert listed[0]["execution_id"] == eid and listed[0]["status"] == "success"
    assert cli("show", "00000000-0000-4000-8000-00000000dead", cwd=here).returncode == 1
    assert cli("list", "--status", "weird", cwd=here).returncode == 2


def test_s12_store_option_and_environment_variable(here):
    p = write_plan(here, make_plan({"action": "control.noop"}))
    db = here / "elsewhere.db"
    assert cli("run", p, "--env", "TARGET=x", "--store", str(db), cwd=here).returncode == 0
    listed = json.loads(cli("list", "--json", cwd=here, env={"ORDINANCE_STORE": str(db)}).stdout)
    assert len(listed) == 1
    assert not (here / ".ordinance").exists()


def test_s12_recover_closes_a_killed_run(here):
    p = write_plan(here, make_plan({"action": "control.sleep", "payload": {"ms": 60_000}}))
    env = dict(os.environ, ORDINANCE_LEASE_MS="300")
    env.pop("ORDINANCE_STORE", None)
    proc = subprocess.Popen([sys.executable, "-m", "ordinance.cli.app", "run", p, "--env", "TARGET=x", "--json"],
                            cwd=here, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = cli("list", "--json", cwd=here)
            if r.returncode == 0 and json.loads(r.stdout or b"[]"):
                break
            time.sleep(0.1)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)
        r = cli("recover", "--json", cwd=here, env={"ORDINANCE_LEASE_MS": "300"})
        assert r.returncode == 0
        [closed] = json.loads(r.stdout)
        assert closed["status"] == "failure" and closed["error"]["details"]["reason"] == "executor_lost"
        assert closed["step_results"][0]["status"] == "cancelled"
        assert json.loads(cli("recover", "--json", cwd=here, env={"ORDINANCE_LEASE_MS": "300"}).stdout) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_s12_help_is_complete_for_every_command():
    top = cli("--help").stdout.decode()
    for cmd in ("run", "show", "list", "recover"):
        assert cmd in top
        r = cli(cmd, "--help")
        assert r.returncode == 0 and b"--store" in r.stdout


def test_s12_run_examples_quickstart_end_to_end(here):
    from support import REPO

    r = cli("run", str(REPO / "examples" / "quickstart.json"), "--env", "RELEASE=1.4.0", "--workspace",
            str(here / "ws"), "--json", cwd=here)
    assert r.returncode == 0, r.stdout
    assert (here / "ws" / "out" / "RELEASE_NOTES.txt").read_text().startswith("Faster validation")


def test_s12_version():
    from ordinance import __version__

    r = cli("--version")
    assert r.returncode == 0 and r.stdout.decode().strip() == f"ordinance {__version__}"


@pytest.mark.parametrize("args", [
    ("list",), ("show", sid(1)), ("wait", sid(1)), ("journal", "verify"), ("journal", "export", "--execution", sid(1)),
    ("journal", "checkpoint"), ("journal", "public-key"), ("journal", "prove", "--execution", sid(1)), ("token", "list"),
    ("token", "revoke", "tok_x"),
], ids=" ".join)
def test_s12_reading_commands_never_create_a_store(tmp_path, args):
    """A command that only reads, run where nothing has run yet, says so (exit 2) and leaves no store behind."""
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr.decode())
    assert "no store there" in r.stderr.decode()
    assert str(tmp_path / ".ordinance" / "ordinance.db") in r.stderr.decode()
    assert not (tmp_path / ".ordinance").exists()
    r = cli(*args, "--store", str(tmp_path / "elsewhere.db"), cwd=tmp_path)
    assert r.returncode == 2 and not (tmp_path / "elsewhere.db").exists()


def test_s12_run_creates_the_store_and_reading_commands_then_find_it(here):
    plan = write_plan(here, make_plan({"action": "control.noop"}))
    assert cli("run", plan, "--env", "TARGET=x", "--workspace", "ws", cwd=here).returncode == 0
    assert (here / ".ordinance" / "ordinance.db").exists()
    assert cli("list", cwd=here).returncode == 0
    assert cli("journal", "verify", cwd=here).returncode == 0
