#!/usr/bin/env python3
"""Engine benchmarks (plain Python; prints tables).

    python bench/engine.py              # Ordinance alone
    python bench/engine.py --peers      # also DBOS Transact and Prefect 3, each in its own virtual environment

Measures, on the embedded SQLite store:
  * engine overhead per step for 1 000 control.noop steps, as a chain and as a fan-out, at durability full and normal
    (wall time of Engine.run divided by the step count; one durable commit per chain step is the floor);
  * sync-step dispatch overhead: control.spin {"ms": 0} through the warm pool of killable worker processes;
  * stop latency after a timeout (p50, p99) for async, sync (pool process) and subprocess steps: how long after the
    step's limit the work really stopped. The work itself writes a monotonic-clock heartbeat every ~0.2 ms; the
    last heartbeat minus (attempt start + timeout) is the latency (CLOCK_MONOTONIC is system-wide on Linux).
Timings are medians of several runs; nothing here is asserted — benchmarks measure, tests verify.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ordinance.actions import default_registry  # noqa: E402
from ordinance.engine import Engine  # noqa: E402
from ordinance.store.sqlite import SQLiteStore  # noqa: E402

N = 1000
ENV = {"TARGET": "bench"}


def sid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"



def plan(steps: list[dict], plan_no: int, **fields) -> dict:
    for i, s in enumerate(steps, 1):
        s.setdefault("id", sid(i))
    doc = {"id": f"{plan_no:08d}-0000-4000-8000-000000000000", "version": 1, "name": "bench", "created_at": 1,
           "steps": steps, "context_requirements": ["TARGET"]}
    doc.update(fields)
    return doc


def chain(n: int, action: str = "control.noop", payload: dict | None = None) -> list[dict]:
    steps = []
    for i in range(1, n + 1):
        s = {"action": action}
        if payload is not None:
            s["payload"] = dict(payload)
        if i > 1:
            s["depends_on"] = [sid(i - 1)]
        steps.append(s)
    return steps


def fanout(n: int) -> list[dict]:
    return [{"action": "control.noop"} for _ in range(n)]


def table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |")


def time_run(durability: str, doc: dict, repeats: int) -> float:
    """Median ms per step of Engine.run over ``repeats`` runs, each on a fresh store (warm interpreter)."""
    per_step = []
    for r in range(repeats):
        d = tempfile.mkdtemp(prefix="ordinance-bench-")
        try:
            store = SQLiteStore(os.path.join(d, "bench.db"), durability=durability)
            engine = Engine(store, workspace=d, recover_on_start=False)
            doc = dict(doc, id=f"{r + 10:08d}-0000-4000-8000-000000000000")
            t0 = time.perf_counter()
            result = engine.run(doc, environment=ENV)
            elapsed = time.perf_counter() - t0
            assert result.status.value == "success", result.error
            per_step.append(elapsed * 1000 / len(doc["steps"]))
            store.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return statistics.median(per_step)


def commit_floor(durability: str, n: int = 500) -> float:
    """Median ms of one durable one-row commit on this disk (the physical floor of a chain step)."""
    import sqlite3

    d = tempfile.mkdtemp(prefix="ordinance-bench-")
    try:
        conn = sqlite3.connect(os.path.join(d, "floor.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
        conn.execute("CREATE TABLE t (x BLOB)")
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?)", (b"x" * 400,))
            conn.execute("COMMIT")
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def contract_floor(durability: str, commit_every: int, n: int = N, repeats: int = 3) -> float:
    """Median ms per step of the work the contract itself requires of a no-op step, with no engine around it.

    Per step: the idempotency key (§7.1), an ``attempt_started`` journal record (canonical JSON via orjson,
    entry hash, RFC 6962 leaf hash) committed before the action runs (§5.8), the action as an asyncio task with a
    timeout timer (§5.3), an ``attempt_succeeded`` record and a receipt (§7.1, §8); the store's own tables and
    statements. A chain commits once per step (a step's completion with its successor's start); a fan-out
    commits once per ``commit_every`` steps. It skips everything an engine adds (scheduling, state, lease fencing,
    events, rule sets, the result), so it is a lower bound for any engine that keeps the contract on this machine.
    """
    import asyncio
    import hashlib

    import orjson

    opts = orjson.OPT_SORT_KEYS
    eid = "dab5e81c-17c4-44b0-9da9-8600fcf2022b"

    async def noop() -> dict:
        return {}

    def record(seq: int, kind: str, step_id: str, prev: str, data: dict) -> tuple[tuple, str]:
        body = orjson.dumps({"seq": seq, "execution_id": eid, "kind": kind, "at": time.time_ns() // 1_000_000,
                             "step_id": step_id, "attempt": 1, "prev_entry_hash": prev, "data": data}, option=opts)
        entry = "sha256:" + hashlib.sha256(body).hexdigest()
        return (seq, eid, seq, kind, body, entry, hashlib.sha256(b"\x00" + body).digest()), entry

    async def steps(conn, sql) -> None:
        loop = asyncio.get_running_loop()
        prev, seq, rows, receipts = "sha256:" + "0" * 64, 0, [], []
        for i in range(n):
            step_id = sid(i + 1)
            key = "sha256:" + hashlib.sha256(orjson.dumps(
                {"plan_id": "p", "step_id": step_id, "action": "control.noop", "payload": {}}, option=opts)).hexdigest()
            step = {"operation_type": "control.noop", "pre_state_hash": key, "error_message": None,
                    "compensation_status": "not_required", "started_at": 1}
            row, prev = record(seq, "step.attempt_started", step_id, prev, {
                **step, "status": "running", "completed_at": None, "post_state_hash": None, "idempotency_key": key})
            rows.append(row)
            seq += 1
            if i % commit_every == 0 or i == n - 1:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql.insert_journal, rows)
                conn.executemany(sql.upsert_receipt, receipts)
                conn.execute("COMMIT")
                rows, receipts = [], []
            task = loop.create_task(noop())
            timer = loop.call_later(30.0, task.cancel)
            out = await task
            timer.cancel()
            op = "op_" + hashlib.sha256(f"{eid}/{step_id}/1".encode()).hexdigest()[:32]
            row, prev = record(seq, "step.attempt_succeeded", step_id, prev, {
                **step, "status": "succeeded", "completed_at": 2, "post_state_hash": key, "operation_id": op,
                "output_digest": "sha256:" + hashlib.sha256(orjson.dumps(out, option=opts)).hexdigest()})
            rows.append(row)
            seq += 1
            receipt = {"operation_id": op, "execution_id": eid, "step_id": step_id, "attempt": 1, "timestamp": 2,
                       "action": "control.noop", "idempotency_key": key, "pre_state_hash": key,
                       "post_state_hash": key, "compensation_type": "none", "compensation_command": None,
                       "compensation_verified": False, "status": "succeeded", "output": out, "payload": {}}
            receipts.append((op, eid, step_id, 1, key, "succeeded", orjson.dumps(receipt, option=opts).decode()))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql.insert_journal, rows)
        conn.executemany(sql.upsert_receipt, receipts)
        conn.execute("COMMIT")

    per_step = []
    for _ in range(repeats):
        d = tempfile.mkdtemp(prefix="ordinance-bench-")
        try:
            store = SQLiteStore(os.path.join(d, "floor.db"), durability=durability)
            t0 = time.perf_counter()
            asyncio.run(steps(store._conn, store._sql))
            per_step.append((time.perf_counter() - t0) * 1000 / n)
            store.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return statistics.median(per_step)


# -- stop latency --------------------------------------------------------------------------------------------------
HEARTBEAT_CHILD = textwrap.dedent("""
    import os, sys, time
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    while True:
        os.pwrite(fd, b"%.9f\\n" % time.monotonic(), 0)
        t = time.monotonic() + 0.0002
        while time.monotonic() < t:
            pass
""")


def _heartbeat_sync(payload, ctx):
    """Sync (pool) action: spins writing monotonic heartbeats into payload.path until it is killed."""
    fd = os.open(payload["path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    while True:
        os.pwrite(fd, b"%.9f\n" % time.monotonic(), 0)
        t = time.monotonic() + 0.0002
        while time.monotonic() < t:
            pass


async def _heartbeat_async(payload, ctx):
    """Async action: ticks until cancelled; the moment cancellation lands is its last heartbeat."""
    path = payload["path"]
    try:
        while True:
            await asyncio.sleep(0.0002)
            with open(path, "w") as fh:
                fh.write("%.9f\n" % time.monotonic())
    except asyncio.CancelledError:
        with open(path, "w") as fh:
            fh.write("%.9f\n" % time.monotonic())
        raise


def stop_latency_ms(kind: str, runs: int, timeout_ms: int = 50) -> list[float]:
    """Latency = last heartbeat − (attempt start + timeout), with the attempt start taken from the engine's
    own monotonic clock at launch (hooked below)."""
    from ordinance.engine import execution as ex

    starts: dict[str, float] = {}
    orig = ex.Execution._launch

    def hooked(self, st, attempt, *a):
        payload = st.resolved_payload or {}
        if "path" in payload:
            starts[payload["path"]] = time.monotonic()
        elif st.step.action == "shell.run":
            starts[st.step.payload["argv"][-1]] = time.monotonic()
        return orig(self, st, attempt, *a)

    ex.Execution._launch = hooked
    try:
        reg = default_registry.copy()
        reg.action("bench.heartbeat_sync", replace=True)(_heartbeat_sync)
        reg.action("bench.heartbeat_async", replace=True)(_heartbeat_async)
        d = tempfile.mkdtemp(prefix="ordinance-bench-")
        out = []
        try:
            store = SQLiteStore(os.path.join(d, "bench.db"), durability="normal")
            child = Path(d, "child.py")
            child.write_text(HEARTBEAT_CHILD)
            engine = Engine(store, registry=reg, workspace=d, recover_on_start=False)

            async def main():
                try:
                    for r in range(runs):
                        hb = os.path.join(d, f"{kind}{r}")
                        if kind == "async":
                            step = {"action": "bench.heartbeat_async", "payload": {"path": hb}}
                        elif kind == "sync":
                            step = {"action": "bench.heartbeat_sync", "payload": {"path": hb}}
                        else:
                            step = {"action": "shell.run", "payload": {"argv": [sys.executable, str(child), hb]}}
                        step["timeout_ms"] = timeout_ms
                        res = await engine.run_async(plan([step], 1000 + r), environment=ENV)
                        assert res.error is not None and res.error.error_code.value == "STEP_TIMEOUT", res.error
                        await asyncio.sleep(0.05)  # let a killed pool worker be replaced
                        if not Path(hb).exists():  # stopped before its first heartbeat (interpreter start-up)
                            continue
                        last = float(Path(hb).read_text().split()[0])
                        out.append((last - (starts[hb] + timeout_ms / 1000.0)) * 1000)
                finally:
                    await engine.aclose()

            asyncio.run(main())
            store.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)
        return out
    finally:
        ex.Execution._launch = orig


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


def sync_dispatch(n: int = 300) -> tuple[float, float]:
    """Median ms per step of a chain of n control.spin {"ms": 0} (sync, through the pool) and of n control.sleep
    {"ms": 0} (async, run as a task: control.noop runs inline and would not compare like with like)."""
    spin = time_run("normal", plan(chain(n, "control.spin", {"ms": 0}), 5), 3)
    task = time_run("normal", plan(chain(n, "control.sleep", {"ms": 0}), 6), 3)
    return spin, task


# -- peers ---------------------------------------------------------------------------------------------------------
PEERS = ROOT / "bench" / ".peers"

DBOS_SCRIPT = textwrap.dedent("""
    import os, sys, time, statistics, tempfile
    os.chdir(tempfile.mkdtemp())
    from dbos import DBOS
    DBOS(config={"name": "bench", "system_database_url": "sqlite:///" + os.path.abspath("dbos.sqlite")})

    @DBOS.step()
    def noop(i):
        return i

    @DBOS.workflow()
    def chain(n):
        for i in range(n):
            noop(i)

    DBOS.launch()
    n = int(sys.argv[1]); runs = []
    for _ in range(3):
        t = time.perf_counter(); chain(n); runs.append((time.perf_counter() - t) * 1000 / n)
    print(statistics.median(runs))
    DBOS.destroy()
""")

PREFECT_SCRIPT = textwrap.dedent("""
    import sys, time, statistics
    from prefect import flow, task

    @task
    def noop(i):
        return i

    @flow
    def chain(n):
        for i in range(n):
            noop(i)

    n = int(sys.argv[1]); chain(5); runs = []
    for _ in range(3):
        t = time.perf_counter(); chain(n); runs.append((time.perf_counter() - t) * 1000 / n)
    print(statistics.median(runs))
""")


def venv_python(name: str, packages: list[str]) -> Path | None:
    env_dir = PEERS / name
    py = env_dir / "bin" / "python"
    marker = env_dir / ".installed"
    if marker.exists() and marker.read_text() == " ".join(packages):
        return py
    print(f"installing {name} ({' '.join(packages)}) into {env_dir} …", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env_dir)], check=True)
    r = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  {name} did not install: {r.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    marker.write_text(" ".join(packages))
    return py


def run_peer(name: str, packages: list[str], script: str, env: dict[str, str] | None = None,
             timeout: float = 900) -> float | str:
    py = venv_python(name, packages)
    if py is None:
        return "not installable here"
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        r = subprocess.run([str(py), "-c", script, str(N)], capture_output=True, text=True, timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired:
        return "timed out"
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        return f"failed: {tail[:80]}"
    return float(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", action="store_true", help="also run DBOS Transact and Prefect 3 (installs them)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration (median)")
    ap.add_argument("--latency-runs", type=int, default=40, help="timeouts per stop-latency measurement")
    args = ap.parse_args()

    print(f"Ordinance engine benchmark — {N} steps, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    rows = []
    results = {}
    targets = {("full", "chain"): 0.3, ("normal", "chain"): 0.1}
    for durability in ("full", "normal"):
        floor = commit_floor(durability)
        for shape, steps, every in (("chain", chain(N), 1), ("fan-out (max_parallel 256)", fanout(N), 256),
                                    ("fan-out (max_parallel 8)", fanout(N), 8)):
            extra = {"max_parallel": 256} if "256" in shape else {}
            ms = time_run(durability, plan(steps, 1, **extra), args.repeats)
            minimal = contract_floor(durability, every, repeats=args.repeats)
            results[(durability, shape)] = ms
            target = targets.get((durability, shape), 0.1 if "256" in shape else None)
            rows.append([shape, durability, f"{ms:.3f}", f"{minimal:.3f}", f"{ms / minimal:.1f}×",
                         f"{floor:.3f}", f"≤ {target}" if target else "—"])
    table("Engine overhead per step (1 000 control.noop steps, SQLite; median of runs)",
          ["shape", "durability", "ms/step", "contract floor ms/step", "vs floor", "one-commit floor ms", "target"],
          rows)
    print("contract floor: the work the contract requires of each step (journal records, receipt, the commits, an "
          "asyncio task) done with no engine around it; see contract_floor().")

    spin, task = sync_dispatch()
    table("Sync-step dispatch (control.spin {\"ms\": 0} through the killable worker pool, chain of 300, normal)",
          ["step", "ms/step"], [["control.spin ms=0 (sync, pool process)", f"{spin:.3f}"],
                                ["control.sleep ms=0 (async, task)", f"{task:.3f}"],
                                ["dispatch overhead", f"{spin - task:.3f}"]])

    rows = []
    for kind in ("async", "sync", "subprocess"):
        # a subprocess step needs its interpreter started before it can beat: give it a longer limit
        lat = stop_latency_ms(kind, args.latency_runs, timeout_ms=300 if kind == "subprocess" else 50)
        rows.append([kind, len(lat), f"{pct(lat, 50):.2f}", f"{pct(lat, 99):.2f}", f"{max(lat):.2f}"])
    table("Stop latency after a step timeout (50 ms; 300 ms for subprocesses) — ms from the limit to the work's last heartbeat",
          ["step kind", "runs", "p50", "p99", "max"], rows)

    if args.peers:
        ours = results[("full", "chain")]
        dbos = run_peer("dbos", ["dbos==3.4.0"], DBOS_SCRIPT)
        with tempfile.TemporaryDirectory() as home:
            prefect = run_peer("prefect", ["prefect==3.8.8", "fastapi==0.154.0"], PREFECT_SCRIPT, env={
                "PREFECT_HOME": home, "PREFECT_SERVER_EPHEMERAL_ENABLED": "true",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"})
        rows = [["Ordinance (SQLite, durability full)", f"{ours:.3f}", "1.0×"]]
        for name, v in (("DBOS Transact 3.4.0 (SQLite)", dbos), ("Prefect 3.8.8 (ephemeral server, client time)", prefect)):
            if isinstance(v, float):
                rows.append([name, f"{v:.3f}", f"{v / ours:.1f}× slower" if v > ours else f"{ours / v:.1f}× faster"])
            else:
                rows.append([name, v, "—"])
        table(f"{N}-step no-op chain, side by side (median of 3; ms per step)", ["engine", "ms/step", "vs Ordinance"], rows)


if __name__ == "__main__":
    main()
