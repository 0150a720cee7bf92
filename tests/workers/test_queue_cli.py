"""`ordinance submit` → `ordinance worker` → `ordinance wait`, through the real CLI (CONTRACT §5.8, §12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from support import cli, make_plan, sid
from workerkit import records

POPEN_ENV = {k: v for k, v in os.environ.items() if k != "ORDINANCE_STORE"}


def popen_cli(*args: str, cwd=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ordinance.cli.app", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=POPEN_ENV, cwd=cwd)


def plans() -> dict[str, dict]:
    return {
        "success": make_plan({"action": "control.sleep", "payload": {"ms": 50}},
                             {"action": "control.echo", "payload": {"value": 7}, "depends_on": [sid(1)]}, id=sid(101)),
        "partial": make_plan({"action": "control.fail", "on_failure": "skip"}, {"action": "control.noop"}, id=sid(102)),
        "failure": make_plan({"action": "control.fail", "payload": {"message": "boom"}}, id=sid(103)),
        "invalid": make_plan({"action": "control.noop", "depends_on": [sid(1)]}, id=sid(104)),  # depends on itself
    }


def test_s12_submit_worker_wait_end_to_end(backend, tmp_path, workspace):
    files = {}
    for name, plan in plans().items():
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(plan))
    # Four submits side by side (one with --json), then four waits that block before any worker exists.
    subs = {name: popen_cli("submit", str(f), "--env", "TARGET=x", "--store", backend.url,
                            *(["--json"] if name == "success" else []), cwd=tmp_path)
            for name, f in files.items()}
    ids = {}
    for name, p in subs.items():
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
        ids[name] = json.loads(out)["execution_id"] if name == "success" else out.decode().strip()
        uuid.UUID(ids[name])
        row = backend.store.get_execution(ids[name])
        assert row is not None and row.status == "queued"
        assert backend.store.get_result(ids[name]) is None
    waits = {name: popen_cli("wait", eid, "--store", backend.url, "--timeout-s", "60",
                             *([] if name == "partial" else ["--json"]))
             for name, eid in ids.items()}

    w = cli("worker", "--once", "--concurrency", "2", "--store", backend.url, "--workspace", str(workspace),
            env={"ORDINANCE_LEASE_MS": "5000"})
    assert w.returncode == 0, w.stderr.decode()
    log = w.stderr.decode()
    for eid in ids.values():
        assert f"claimed {eid}" in log and f"finished {eid}" in log
    assert "queue drained" in log

    rcs = {}
    for name, p in waits.items():
        out, err = p.communicate(timeout=60)
        rcs[name] = p.returncode
        if name != "partial":
            doc = json.loads(out)  # the PlanResult alone on stdout
            assert doc["execution_id"] == ids[name] and doc["status"] == ("success" if name == "success" else "failure")
        else:
            assert "PARTIAL" in out.decode()  # printed like `ordinance show`
    assert rcs == {"success": 0, "partial": 3, "failure": 1, "invalid": 1}
    bad = backend.store.get_result(ids["invalid"])
    assert bad["error"]["error_code"] == "PLAN_INVALID" and bad["steps_executed"] == 0
    assert backend.store.get_result(ids["success"])["step_results"][1]["output"] == {"value": 7}

    for eid in ids.values():
        kinds = [r["kind"] for r in records(backend.store, eid)]
        assert kinds[0] == "execution.queued"
        assert kinds.count("execution.received") == 1 and kinds.count("execution.queued") == 1
        assert kinds.index("execution.received") == 1
        assert kinds[-1] == "execution.result"
        assert backend.store.get_execution(eid).status in ("success", "partial", "failure")


def test_s12_wait_timeout_unknown_id_and_submit_refusals(sqlite_backend, tmp_path):
    url = sqlite_backend.url
    plan = tmp_path / "p.json"
    plan.write_text(json.dumps(make_plan({"action": "control.noop"}, id=sid(201))))
    other = tmp_path / "q.json"
    other.write_text(json.dumps(make_plan({"action": "control.echo", "payload": {"value": 1}}, id=sid(202))))
    eid = str(uuid.uuid4())
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps({"execution_id": eid, "plan_id": sid(201), "started_at": 1_700_000_000_000,
                               "deadline_ms": 1_700_000_000_000 + 3_600_000, "environment": {"TARGET": "x"}}))
    r = cli("submit", str(plan), "--context", str(ctx), "--store", url)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().strip() == eid
    again = popen_cli("submit", str(plan), "--context", str(ctx), "--store", url)  # same id, same plan: same id back
    reuse = popen_cli("submit", str(other), "--context", str(ctx), "--store", url)  # same id, another plan
    timeout = popen_cli("wait", eid, "--timeout-s", "0.3", "--store", url)  # no worker runs
    unknown = popen_cli("wait", str(uuid.uuid4()), "--store", url)
    both = popen_cli("submit", str(plan), "--context", str(ctx), "--env", "A=1", "--store", url)
    missing = popen_cli("submit", str(tmp_path / "nope.json"), "--store", url)

    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0 and out.decode().strip() == eid
    _, err = reuse.communicate(timeout=60)
    assert reuse.returncode == 1 and "another plan" in err.decode()
    _, err = timeout.communicate(timeout=60)
    assert timeout.returncode == 124 and "still queued" in err.decode()
    _, err = unknown.communicate(timeout=60)
    assert unknown.returncode == 2 and "no execution" in err.decode()
    for p in (both, missing):
        p.communicate(timeout=60)
        assert p.returncode == 2
    assert [r.execution_id for r in sqlite_backend.store.list_executions()] == [eid]


def test_s12_worker_usage_errors(tmp_path):
    r = cli("worker", "--outbox-webhook", "http://127.0.0.1:9/x", "--store", str(tmp_path / "s.db"))
    assert r.returncode == 2 and "webhook-secret" in r.stderr.decode()
    r = cli("worker", "--concurrency", "0", "--store", str(tmp_path / "s.db"))
    assert r.returncode == 2
