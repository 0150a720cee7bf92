"""Benchmark of the journal ledger over real stores (§8): verification, bundles, and the cost of the tree on append.

Run: ``python bench/ledger.py [--records 100000] [--backends sqlite,postgres] [--repeat 3]`` from the repo root
(``src/`` and ``tests/`` are put on the path; PostgreSQL is used when it answers at 127.0.0.1:5432, in a schema of
its own that is dropped afterwards).

The journal is written by **real engine runs** (``Engine.run`` of 1000-step ``control.noop`` chains, about 3 000
records each: ``policy.decision``, ``step.attempt_started`` and ``step.attempt_succeeded`` per step, plus the
execution's admission and outcome records), so bodies, sizes and PlanResults are the engine's own.  A signed
checkpoint is taken after every run, as an operator running ``journal checkpoint`` after each run would have.

Tables printed (best of ``--repeat`` runs each; the machine's load is printed with them):

1. store verification (``verify_store``: every chain, the Merkle tree against the latest signed checkpoint, all
   stored checkpoints' signatures, the PlanResult digests): in one process and with worker processes;
   and ``journal verify --execution`` for one 3 000-record execution;
2. offline bundle verification (``verify_bundle`` of a whole execution's bundle, as ``journal verify --bundle``);
3. append cost: the engine's per-record write (``store.write`` of 2-record batches, as a step writes) against the
   same write followed by keeping the tree (a CompactRange) and signing + storing a checkpoint after every batch,
   or every 100 batches.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from ordinance.ledger import (
    Checkpoint,
    CompactRange,
    Signer,
    record_leaf_hash,
    service,
    sign_checkpoint,
    verify_bundle,
)

STEPS = 1000


def _plan(n: int) -> dict[str, Any]:
    from support import make_plan, sid

    steps = [{"action": "control.noop", **({"depends_on": [sid(i - 1)]} if i > 1 else {})} for i in range(1, n + 1)]
    return make_plan(*steps, id=str(uuid.uuid4()))


def _fill(store: Any, workspace: str, records: int, signer: Signer) -> list[str]:
    from support import ENV

    from ordinance.engine import Engine

    engine = Engine(store, workspace=workspace)
    ids = []
    t0 = time.perf_counter()
    while store.journal_size() < records:
        ids.append(engine.run(_plan(STEPS), environment=ENV).execution_id)
        service.checkpoint(store, signer)
    dt = time.perf_counter() - t0
    print(f"  wrote {store.journal_size():,} records in {len(ids)} engine runs in {dt:.1f} s "
          f"({store.journal_size() / dt:,.0f} records/s, checkpoint after each run)")
    return ids


def _cpu() -> float:
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


_LAST_CPU = [0.0]


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs; the CPU seconds (this process + its finished workers) of that run
    are left in ``_LAST_CPU``."""
    best, out = float("inf"), None
    for _ in range(repeat):
        c0, t0 = _cpu(), time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        if dt < best:
            best, _LAST_CPU[0] = dt, _cpu() - c0
    return best, out


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
    except OSError:  # pragma: no cover
        return "load average n/a"


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print(_row(header, widths))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(_row(r, widths))


def bench_store(name: str, store: Any, workspace: str, records: int, repeat: int) -> dict[str, Any]:
    from ordinance.ledger.keys import load_signer

    print(f"\n[{name}] {store!r}")
    signer = load_signer(store).signer
    ids = _fill(store, workspace, records, signer)
    n = store.journal_size()
    verifier = signer.verifier
    out: dict[str, Any] = {"backend": name, "records": n, "executions": len(ids)}
    workers = service.default_workers()
    rows = []

    def full(w: int) -> Any:
        return service.verify_store(store, verifier, workers=w)

    for label, fn in (
        ("verify, 1 process", lambda: full(1)),
        (f"verify, {workers} workers", lambda: full(workers)),
    ):
        dt, rep = _best(fn, repeat)
        assert rep.ok, rep.problems[:3]
        rows.append([label, f"{rep.records_checked:,}", f"{dt:.3f}", f"{rep.records_checked / dt:,.0f}",
                     f"{_LAST_CPU[0]:.2f}", f"{rep.records_checked / _LAST_CPU[0]:,.0f}"])
        out[label] = rep.records_checked / dt

    ctx = service.load_context(store, verifier)
    ctx.result_digest = None

    def journal_only() -> Any:
        return service.check_log(lambda: service.scan_store(store), ctx)

    dt, rep = _best(journal_only, repeat)
    assert rep.ok
    rows.append(["records only (no PlanResult digests), 1 process", f"{n:,}", f"{dt:.3f}", f"{n / dt:,.0f}",
                 f"{_LAST_CPU[0]:.2f}", f"{n / _LAST_CPU[0]:,.0f}"])
    out["journal only"] = n / dt
    one = ids[len(ids) // 2]
    dt, rep = _best(lambda: service.verify_store(store, verifier, execution_id=one), repeat)
    assert rep.ok
    rows.append(["verify --execution (one run)", f"{rep.records_checked:,}", f"{dt:.3f}",
                 f"{rep.records_checked / dt:,.0f}", f"{_LAST_CPU[0]:.2f}", ""])
    dt, _ = _best(lambda: service.checkpoint(store, signer), 1)
    rows.append(["checkpoint (nothing new since the last)", f"{n:,}", f"{dt:.3f}", "", f"{_LAST_CPU[0]:.2f}", ""])
    _table(f"Verification, {name}, {n:,} records in {len(ids)} executions ({_load()})",
           ["operation", "records", "best s", "records/s", "CPU s", "records/CPU-s"], rows)

    # offline bundles
    bundle = service.export_bundle(store, one, signer)
    key = verifier.to_key()
    m = len(bundle["records"])
    dt, rep = _best(lambda: verify_bundle(bundle, key), repeat)
    assert rep.ok
    import json

    from ordinance.contract.jsonio import load_document

    text = json.dumps(bundle, indent=1).encode()
    dt_read, rep = _best(lambda: verify_bundle(load_document(text, max_bytes=1 << 30), key), repeat)
    assert rep.ok
    dt_export, _ = _best(lambda: service.export_bundle(store, one, signer), 1)
    _table(f"Offline bundle, {name} (one execution; {len(text) / 1e6:.1f} MB of JSON)",
           ["operation", "records", "best s", "records/s"], [
        ["export_bundle (proofs against the latest checkpoint)", f"{m:,}", f"{dt_export:.3f}", f"{m / dt_export:,.0f}"],
        ["verify_bundle (offline, parsed bundle)", f"{m:,}", f"{dt:.3f}", f"{m / dt:,.0f}"],
        ["strict JSON read + verify_bundle (= journal verify --bundle)", f"{m:,}", f"{dt_read:.3f}", f"{m / dt_read:,.0f}"],
    ])
    out["bundle verify"] = m / dt
    return out


def bench_append(name: str, make_store: Callable[[], Any], batches: int) -> None:
    """Per-record cost of the engine's writes, and of keeping the tree and signed checkpoints beside them.

    Each variant writes to a store of its own; the variants take turns (rounds of 25 batches) so that the
    machine's load falls on all of them alike, after 20 warm-up batches each.  Median per batch.
    """
    from ordinance.ledger import make_record
    from ordinance.store import CheckpointRow, ExecutionRow, JournalAppend, WriteBatch

    signer = Signer.generate("bench.example/log")
    variants = [("store.write only (what the engine does)", 0), ("+ tree (CompactRange append + root)", -1),
                ("+ tree + signing after every batch (not stored)", -2),
                ("+ tree + signed checkpoint after every batch", 1),
                ("+ tree + signed checkpoint every 100 batches", 100)]
    states = []
    for _label, every in variants:
        store = make_store()
        eid = str(uuid.uuid4())
        now = int(time.time() * 1000)
        store.create_execution(ExecutionRow(eid, "p", 1, "sha256:" + "0" * 64, "sha256:" + "1" * 64, "running",
                                            now, now, {}))
        states.append({"store": store, "eid": eid, "prev": "sha256:" + "0" * 64, "seq": 0, "n": 0, "every": every,
                       "cr": CompactRange.from_leaf_hashes(store.leaf_hashes()), "samples": []})

    def one(st: dict[str, Any], keep: bool) -> None:
        batch = WriteBatch()
        for _ in range(2):  # a step's start and its end, as the engine commits them
            rec = make_record(st["eid"], st["seq"], "step.attempt_succeeded", 1_700_000_000_000,
                              {"operation_type": "control.noop", "status": "succeeded", "i": st["seq"]}, st["prev"])
            batch.journal.append(JournalAppend(st["eid"], st["seq"], rec.kind, rec.body, rec.entry_hash))
            st["prev"], st["seq"] = rec.entry_hash, st["seq"] + 1
        t0 = time.perf_counter()
        st["store"].write(batch)
        every = st["every"]
        if every:
            cr = st["cr"]
            cr.extend(record_leaf_hash(j.body) for j in batch.journal)
            root = cr.root()
            st["n"] += 1
            if every == -2:
                sign_checkpoint(Checkpoint(signer.name, cr.size, root), signer)
            elif every > 0 and st["n"] % every == 0:
                cp = Checkpoint(signer.name, cr.size, root)
                st["store"].save_checkpoint(CheckpointRow(cp.tree_size, cp.root_hash, sign_checkpoint(cp, signer), 0))
        if keep:
            st["samples"].append(time.perf_counter() - t0)

    for st in states:
        for _ in range(20):
            one(st, False)
    done = 0
    while done < batches:
        for st in states:
            for _ in range(25):
                one(st, True)
        done += 25
    rows = []
    for (label, _every), st in zip(variants, states):
        st["store"].close()
        rows.append([label, statistics.median(st["samples"]) / 2 * 1e6, statistics.mean(st["samples"]) / 2 * 1e6])
    base = rows[0][1]
    _table(f"Append cost, {name} ({batches} batches of 2 records per variant, default durability; {_load()})",
           ["write", "median µs/record", "mean µs/record", "median vs engine"],
           [[r[0], f"{r[1]:,.1f}", f"{r[2]:,.1f}", f"{r[1] / base:.2f}x"] for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--append-batches", type=int, default=500)
    args = ap.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(f"Ordinance journal ledger benchmark: ~{args.records:,} records per store, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}; {_load()}")
    tmp = Path(tempfile.mkdtemp(prefix="ordinance-bench-ledger-"))
    os.environ["ORDINANCE_KEY_DIR"] = str(tmp / "keys")
    ws = tmp / "ws"
    ws.mkdir()
    from ordinance.store.sqlite import SQLiteStore

    if "sqlite" in backends:
        st = SQLiteStore(str(tmp / "sqlite" / "ordinance.db"), durability="normal")
        try:
            bench_store("SQLite", st, str(ws), args.records, args.repeat)
        finally:
            st.close()
        counter = iter(range(10**6))
        bench_append("SQLite", lambda: SQLiteStore(str(tmp / f"append{next(counter)}" / "o.db")), args.append_batches)
    if "postgres" in backends:
        from support import drop_pg_schema, pg_url_or_reason

        url, why = pg_url_or_reason()
        if url is None:
            print(f"\n[PostgreSQL] skipped: {why}")
        else:
            from ordinance.store.postgres import PostgresStore

            schemas: list[str] = []

            def pg(durability: str = "full") -> Any:
                schema = "bench_ledger_" + uuid.uuid4().hex[:10]
                schemas.append(schema)
                return PostgresStore(url, schema=schema, durability=durability)

            try:
                st = pg("off")
                try:
                    bench_store("PostgreSQL", st, str(ws), args.records, args.repeat)
                finally:
                    st.close()
                bench_append("PostgreSQL", pg, args.append_batches)
            finally:
                for schema in schemas:
                    drop_pg_schema(url, schema)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
