"""Benchmark of the ledger's verification core (§8): records per second, no database.

Run: ``python bench/ledger_verify_core.py`` (from the repo root; ``src/`` is put on the path).
Prints, for synthetic logs of 10k and 100k records (~500-byte bodies, 50 interleaved executions):

* full verification (hash + parse + chains + Merkle root vs. a checkpoint), best of 3 runs on
  freshly built record objects;
* the Merkle root alone over precomputed leaf hashes;
* incremental appends to a CompactRange (one append + root per record, as a store does).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ordinance.ledger import (
    Checkpoint,
    CompactRange,
    StoredRecord,
    root_from_leaf_hashes,
    verify_log,
)
from ordinance.ledger.synthetic import synthetic_log


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _appends(leaves: list[bytes]) -> None:
    cr = CompactRange()
    for h in leaves:
        cr.append(h)


def main() -> None:
    print(
        f"{'records':>8} {'avg body':>9} {'verify_log rec/s':>17} {'merkle root leaves/s':>21} {'compact append/s':>17}"
    )
    for n in (10_000, 100_000):
        log = synthetic_log(n, executions=50, seed=n)
        leaves = [r.leaf_hash for r in log.records]
        cp = Checkpoint("bench.example/log", n, root_from_leaf_hashes(leaves))
        avg = sum(len(r.body) for r in log.records) / n

        t_verify = float("inf")
        for _ in range(3):
            # fresh objects, as read from a database: nothing carried over between runs
            records = [
                StoredRecord(r.execution_id, r.seq, r.kind, bytes(r.body), r.entry_hash, r.leaf_index)
                for r in log.records
            ]
            start = time.perf_counter()
            report = verify_log(records, checkpoint=cp, completed_executions=log.completed)
            t_verify = min(t_verify, time.perf_counter() - start)
            assert report.ok, report.summary()
        t_root = _best(lambda leaves=leaves: root_from_leaf_hashes(leaves))
        t_append = _best(lambda leaves=leaves: _appends(leaves))
        print(f"{n:>8} {avg:>8.0f}B {n / t_verify:>17,.0f} {n / t_root:>21,.0f} {n / t_append:>17,.0f}")


if __name__ == "__main__":
    main()
