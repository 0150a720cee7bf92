"""Deterministic synthetic journals for tests and benchmarks (not used by the engine).

:func:`synthetic_log` makes a store-wide log of ``n`` records spread over several executions,
interleaved as concurrent executions would be.  Each execution starts with
``execution.started``, alternates ``step.started`` / ``step.finished`` records carrying the
StepRecord fields of §8, and ends with ``execution.result`` holding a result digest.  Bodies are
about 400 bytes.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from .records import RESULT_KIND, ZERO_HASH, StoredRecord, make_record

__all__ = ["SyntheticLog", "synthetic_log"]


@dataclass(frozen=True)
class SyntheticLog:
    """Records in leaf order, plus the ids of the executions (all of them complete)."""

    records: list[StoredRecord]
    executions: list[str]

    @property
    def completed(self) -> set[str]:
        """Every execution in the log ended with ``execution.result``."""
        return set(self.executions)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _digest(rng: random.Random) -> str:
    return "sha256:" + rng.getrandbits(256).to_bytes(32, "big").hex()


def synthetic_log(n: int, *, executions: int = 8, seed: int = 0, interleave: bool = True) -> SyntheticLog:
    """A valid log of ``n`` records over ``executions`` executions (each at least 2 records)."""
    if n < 2 * executions:
        raise ValueError(f"{n} records cannot hold {executions} executions of at least 2 records")
    rng = random.Random(seed)
    ids = [_uuid(rng) for _ in range(executions)]
    # split n into per-execution lengths of at least 2
    extra = n - 2 * executions
    cuts = [0, *sorted(rng.randrange(extra + 1) for _ in range(executions - 1)), extra]
    lengths = [2 + cuts[i + 1] - cuts[i] for i in range(executions)]
    order = [i for i in range(executions) for _ in range(lengths[i])]
    if interleave:
        rng.shuffle(order)
    next_seq = [0] * executions
    prev = [ZERO_HASH] * executions
    steps = [[_uuid(rng) for _ in range(max(1, lengths[i] // 2))] for i in range(executions)]
    at = 1_700_000_000_000
    records: list[StoredRecord] = []
    for leaf, e in enumerate(order):
        seq = next_seq[e]
        at += rng.randrange(0, 50)
        step_id: str | None = None
        attempt: int | None = None
        data: dict[str, Any]
        if seq == 0:
            kind = "execution.started"
            data = {"plan_digest": _digest(rng), "principal": "svc-" + str(rng.randrange(100)), "run_id": _digest(rng)}
        elif seq == lengths[e] - 1:
            kind = RESULT_KIND
            data = {"result_digest": _digest(rng), "status": "success", "duration_ms": rng.randrange(1, 10**6)}
        else:
            step_id = steps[e][(seq - 1) // 2 % len(steps[e])]
            attempt = 1
            started = seq % 2 == 1
            kind = "step.started" if started else "step.finished"
            data = {
                "operation_type": "fs.write_file",
                "status": "running" if started else "completed",
                "started_at": at - 5,
                "completed_at": None if started else at,
                "pre_state_hash": _digest(rng),
                "post_state_hash": None if started else _digest(rng),
                "error_message": None,
                "compensation_status": "not_required",
            }
        rec = make_record(ids[e], seq, kind, at, data, prev[e], step_id=step_id, attempt=attempt, leaf_index=leaf)
        records.append(rec)
        prev[e] = rec.entry_hash
        next_seq[e] = seq + 1
    return SyntheticLog(records, ids)
