"""Worker throughput: executions/s for 1, 2 and 4 `ordinance worker` processes, and the engine chain benchmark.

    python bench/workers.py [--pg postgresql://127.0.0.1:5432/test] [--seconds 6] [--skip-sqlite] [--skip-chain]

1. **Workers.** I/O-bound plans (each a chain of ``--steps`` ``control.sleep`` steps of ``--sleep-ms``) are queued
   with ``Engine.submit``; then P worker *processes* (``ordinance worker --once --concurrency C``) start together and
   drain the queue. Enough executions are queued that a run lasts about ``--seconds`` at perfect scaling.
   Throughput = executions / (last result's completed_at − first ``execution.received``), so interpreter start-up
   is not counted. Measured for P = 1, 2, 4 with C = 1 (the process count is what scales) and with C = ``--high-c``.
   Ideal per slot: 1000 / (steps × sleep_ms) executions/s.
2. **Engine chain.** A 1000-step ``control.noop`` chain through ``Engine.run`` on each backend: wall ms per step.

PostgreSQL runs in throwaway schemas (dropped afterwards); SQLite in a temporary file. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ordinance.engine import Engine
from ordinance.store import open_store


def sid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def chain_plan(n: int, action: str, payload: dict, plan_no: int) -> dict:
    steps = [{"id": sid(1), "action": action, "payload": payload}]
    for i in range(2, n + 1):
        steps.append({"id": sid(i), "action": action, "payload": payload, "depends_on": [sid(i - 1)]})
    return {"id": sid(900_000 + plan_no), "version": 1, "name": f"bench {action} x{n}", "created_at": 1,
            "steps": steps, "context_requirements": ["TARGET"], "timeout_ms": 3_600_000}


class Backend:
    """Makes fresh stores of one kind and cleans them up."""

    def __init__(self, kind: str, pg_url: str | None = None) -> None:
        self.kind, self.pg_url = kind, pg_url
        self._tmp = tempfile.TemporaryDirectory(prefix="ordinance-bench-")
        self._schemas: list[str] = []

    def fresh(self):
        if self.kind == "sqlite":
            path = os.path.join(self._tmp.name, f"{uuid.uuid4().hex[:8]}.db")
            return open_store(path), path
        from ordinance.store.postgres import PostgresStore

        schema = "bench_" + uuid.uuid4().hex[:10]
        self._schemas.append(schema)
        st = PostgresStore(self.pg_url, schema=schema)
        return st, st.url

    def cleanup(self) -> None:
        if self._schemas:
            import psycopg

            with psycopg.connect(self.pg_url, autocommit=True) as conn:
                for s in self._schemas:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{s}" CASCADE')
        self._tmp.cleanup()


def throughput(backend: Backend, procs: int, conc: int, args) -> dict:
    per_slot = 1000.0 / (args.steps * args.sleep_ms)  # ideal executions/s of one slot
    n = max(procs * conc * 2, math.ceil(per_slot * procs * conc * args.seconds))
    n = min(n, args.max_executions)
    store, url = backend.fresh()
    plan = chain_plan(args.steps, "control.sleep", {"ms": args.sleep_ms}, 1)
    sub = Engine(store, recover_on_start=False)
    ids = [sub.submit(plan, environment={"TARGET": "bench"}) for _ in range(n)]
    env = {k: v for k, v in os.environ.items() if k != "ORDINANCE_STORE"}
    with tempfile.TemporaryDirectory(prefix="ordinance-bench-ws-") as ws:
        cmd = [sys.executable, "-m", "ordinance.cli.app", "worker", "--once", "--quiet", "--concurrency", str(conc),
               "--poll-ms", "20", "--store", url, "--workspace", ws]
        t0 = time.monotonic()
        ps = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(procs)]
        errs = [p.communicate(timeout=600)[1].decode() for p in ps]
        wall = time.monotonic() - t0
    for p, e in zip(ps, errs):
        if p.returncode != 0:
            raise RuntimeError(f"worker exited {p.returncode}: {e[-2000:]}")
    first, last, ok, engines = None, None, 0, set()
    for eid in ids:
        doc = store.get_result(eid)
        if doc is None:
            raise RuntimeError(f"execution {eid} has no result")
        ok += doc["status"] == "success"
        last = doc["completed_at"] if last is None else max(last, doc["completed_at"])
        for rec in store.journal(eid):
            if rec.kind == "execution.received":
                body = json.loads(rec.body)
                first = body["at"] if first is None else min(first, body["at"])
                engines.add(body["data"]["engine"])
                break
    store.close()
    window = (last - first) / 1000.0
    return {"procs": procs, "conc": conc, "n": n, "ok": ok, "window_s": window, "rate": n / window,
            "ideal": per_slot * procs * conc, "wall_s": wall, "workers_used": len(engines)}


def chain(backend: Backend, steps: int, runs: int) -> dict:
    per_step = []
    for r in range(runs):
        store, _ = backend.fresh()
        with tempfile.TemporaryDirectory(prefix="ordinance-bench-ws-") as ws:
            engine = Engine(store, workspace=ws)
            plan = chain_plan(steps, "control.noop", {}, 2)
            t0 = time.perf_counter()
            res = engine.run(plan, environment={"TARGET": "bench"})
            dt = time.perf_counter() - t0
        assert res.status.value == "success", res.error
        per_step.append(dt * 1000 / steps)
        store.close()
    return {"median": statistics.median(per_step), "min": min(per_step), "runs": per_step}


def pg_url_or_none(url: str) -> tuple[str | None, str]:
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(url)
    users = [None] if "@" in parts.netloc else [getpass.getuser(), "postgres"]
    errors = []
    for user in users:
        u = url if user is None else urlunsplit(parts._replace(netloc=f"{user}@{parts.netloc}"))
        try:
            psycopg.connect(u, connect_timeout=3).close()
            return u, ""
        except Exception as exc:
            errors.append(" ".join(str(exc).split()))
    return None, "; ".join(errors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg", default=os.environ.get("ORDINANCE_TEST_PG_URL", "postgresql://127.0.0.1:5432/test"))
    ap.add_argument("--seconds", type=float, default=6.0, help="target length of each throughput run")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--sleep-ms", type=int, default=50)
    ap.add_argument("--high-c", type=int, default=8, help="the higher per-worker concurrency to report")
    ap.add_argument("--max-executions", type=int, default=1500)
    ap.add_argument("--chain-steps", type=int, default=1000)
    ap.add_argument("--chain-runs", type=int, default=3)
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--skip-chain", action="store_true")
    args = ap.parse_args()

    backends: list[Backend] = []
    pg, why = pg_url_or_none(args.pg)
    if pg:
        backends.append(Backend("postgres", pg))
    else:
        print(f"PostgreSQL: not measured ({why})")
    if not args.skip_sqlite:
        backends.append(Backend("sqlite"))
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; plan: {args.steps} × control.sleep "
          f"{args.sleep_ms} ms (ideal {1000 / (args.steps * args.sleep_ms):.2f} executions/s per slot)\n")
    try:
        print("| backend | worker processes | concurrency each | executions | executions/s | ideal | "
              "efficiency | workers used |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        ratios = []
        for b in backends:
            for conc in (1, args.high_c):
                got = {}
                for procs in (1, 2, 4):
                    r = throughput(b, procs, conc, args)
                    got[procs] = r
                    print(f"| {b.kind} | {procs} | {conc} | {r['n']} | {r['rate']:.2f} | {r['ideal']:.1f} | "
                          f"{r['rate'] / r['ideal']:.0%} | {r['workers_used']} |", flush=True)
                ratios.append((b.kind, conc, got[4]["rate"] / got[1]["rate"], got[2]["rate"] / got[1]["rate"]))
        print("\n| backend | concurrency each | scaling 1→2 processes | scaling 1→4 processes |")
        print("|---|---:|---:|---:|")
        for kind, conc, r4, r2 in ratios:
            print(f"| {kind} | {conc} | {r2:.2f}× | {r4:.2f}× |")
        if not args.skip_chain:
            print(f"\n| backend | {args.chain_steps}-step control.noop chain via Engine.run: ms/step (median of "
                  f"{args.chain_runs}) | best |")
            print("|---|---:|---:|")
            for b in backends:
                c = chain(b, args.chain_steps, args.chain_runs)
                print(f"| {b.kind} | {c['median']:.3f} | {c['min']:.3f} |", flush=True)
    finally:
        for b in backends:
            b.cleanup()


if __name__ == "__main__":
    main()
