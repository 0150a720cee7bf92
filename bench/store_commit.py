"""Cost of one Store.write() with a typical step batch (3 journal records of ~400 bytes + 1 receipt).

    PYTHONPATH=src python bench/store_commit.py [--writes 1000] [--pg postgresql://127.0.0.1:5432/test]

Backends: SQLite durability full / normal (WAL, synchronous=FULL / NORMAL), PostgreSQL (server default
synchronous_commit, and synchronous_commit=off as "normal"). PostgreSQL runs in a throwaway schema that is dropped
afterwards; if no server answers, its rows say why. Batches are built before timing: only write() is measured.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ordinance.store import ExecutionRow, JournalAppend, Store, WriteBatch


def batches(eid: str, n: int) -> list[WriteBatch]:
    out = []
    for i in range(n):
        recs = []
        for k in range(3):
            body = os.urandom(200).hex().encode()  # 400 bytes
            recs.append(JournalAppend(eid, i * 3 + k, "step.completed", body,
                                      "sha256:" + hashlib.sha256(body).hexdigest()))
        receipt = {
            "operation_id": f"{eid}/{i}", "execution_id": eid, "step_id": f"s{i}", "attempt": 1,
            "timestamp": 1_700_000_000_000 + i, "action": "fs.write",
            "idempotency_key": "sha256:" + hashlib.sha256(f"{eid}/{i}".encode()).hexdigest(),
            "pre_state_hash": "sha256:" + "1" * 64, "post_state_hash": "sha256:" + "2" * 64,
            "compensation_type": "fs_restore", "compensation_command": None, "compensation_verified": False,
            "status": "succeeded", "output": {"bytes_written": 128, "path": "out/report.txt"},
        }
        out.append(WriteBatch(journal=recs, receipts=[receipt]))
    return out


def measure(store: Store, writes: int, warmup: int = 50) -> list[float]:
    eid = str(uuid.uuid4())
    store.create_execution(ExecutionRow(eid, "bench", 1, "sha256:" + "0" * 64, "sha256:" + "0" * 64, "running",
                                        0, 0, {"execution_id": eid}))
    work = batches(eid, warmup + writes)
    for b in work[:warmup]:
        store.write(b)
    times = []
    for b in work[warmup:]:
        t0 = time.perf_counter()
        store.write(b)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def pg_url(given: str | None) -> tuple[str | None, str]:
    import psycopg

    candidates = [given] if given else [f"postgresql://{u}@127.0.0.1:5432/test" for u in (getpass.getuser(), "postgres")]
    errors = []
    for url in candidates:
        try:
            psycopg.connect(url, connect_timeout=3).close()
            return url, ""
        except Exception as exc:  # noqa: BLE001
            errors.append(" ".join(str(exc).split()))
    return None, errors[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writes", type=int, default=1000)
    ap.add_argument("--pg", default=os.environ.get("ORDINANCE_BENCH_PG_URL"))
    args = ap.parse_args()

    rows: list[tuple[str, list[float] | str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        from ordinance.store.sqlite import SQLiteStore

        for durability in ("full", "normal"):
            s = SQLiteStore(Path(tmp) / f"{durability}.db", durability=durability)
            rows.append((f"SQLite {durability}", measure(s, args.writes)))
            s.close()

    url, why = pg_url(args.pg)
    if url is None:
        rows.append(("PostgreSQL", f"skipped: {why}"))
    else:
        import psycopg

        from ordinance.store.postgres import PostgresStore

        schema = "ordinance_bench_" + uuid.uuid4().hex[:12]
        try:
            for label, durability in (("full", "full"), ("sync_commit=off", "normal")):
                s = PostgresStore(url, schema=schema, durability=durability)
                rows.append((f"PostgreSQL {label}", measure(s, args.writes)))
                s.close()
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    print(f"Store.write(): 3 journal records × 400 B + 1 receipt; {args.writes} writes after 50 warm-up")
    print()
    print(f"| {'backend':<28} | {'median ms':>9} | {'p90 ms':>8} | {'p99 ms':>8} | {'writes/s':>8} |")
    print(f"|{'-' * 30}|{'-' * 11}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    for label, result in rows:
        if isinstance(result, str):
            print(f"| {label:<28} | {result}")
            continue
        q = statistics.quantiles(result, n=100)
        med = statistics.median(result)
        print(f"| {label:<28} | {med:9.3f} | {q[89]:8.3f} | {q[98]:8.3f} | {1000 / statistics.mean(result):8.0f} |")


if __name__ == "__main__":
    main()
