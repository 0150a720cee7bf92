"""Validation benchmark (CONTRACT §1.4): a 1024-step plan, validated in-process.

Run: ``python bench/validate.py [--runs N]``. Prints a table of medians (and minimums) over N runs of:

* ``validate_plan(dict)``   — an already-parsed document (§0.6 checks on the value + every §1 rule);
* ``validate_plan(bytes)``  — strict JSON reading (§0.6) + every §1 rule;
* ``parse_plan(bytes)``     — the above, then building the frozen pydantic ``Plan``;
* python-jsonschema (Draft 2020-12, validator compiled once) over the exported plan schema, on the same
  dict — it checks only the structural rules, so it does strictly less work than ``validate_plan``.

The plan: a 1024-step chain (each step depends on the previous one); every 32nd step also depends on the
31 steps before it (fan-in); the last step depends on all 1023 others; every step but the first binds
``/value`` from its predecessor and ``/origin`` from step 0 (a transitive dependency); every 10th step
retries with a retry policy.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ordinance.contract.schema import plan_schema  # noqa: E402
from ordinance.contract.validate import parse_plan, validate_plan  # noqa: E402

STEPS = 1024


def _uuid4(label: str) -> str:
    raw = bytearray(hashlib.sha256(label.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def build_plan(n: int = STEPS) -> dict[str, Any]:
    """The benchmark plan: chain + fan-in + bindings (see the module docstring)."""
    ids = [_uuid4(f"step-{i}") for i in range(n)]
    steps: list[dict[str, Any]] = []
    for i in range(n):
        step: dict[str, Any] = {"id": ids[i], "action": "control.echo", "payload": {"value": i, "label": f"step {i}"}}
        deps: list[str] = []
        if i == n - 1:
            deps = ids[: n - 1]
        elif i:
            deps = [ids[i - 1]]
            if i % 32 == 31:
                deps += ids[i - 31: i - 1]
        if deps:
            step["depends_on"] = deps
        if i:
            step["inputs"] = {"/value": {"step": ids[i - 1], "pointer": "/value"},
                              "/origin": {"step": ids[0], "pointer": "/value"}}
        if i % 10 == 0:
            step["on_failure"] = "retry"
            step["retry_policy"] = {"max_attempts": 3, "initial_delay_ms": 100}
        steps.append(step)
    return {"id": _uuid4("plan"), "version": 1, "name": "benchmark: chain + fan-in + bindings", "created_at": 1,
            "steps": steps, "context_requirements": ["TARGET"], "timeout_ms": 3_600_000}


def measure(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    """(median, minimum) wall time in milliseconds; one warm-up run first."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per row (default 30, at least 20)")
    args = parser.parse_args()
    runs = max(args.runs, 20)

    doc = build_plan()
    data = json.dumps(doc).encode()
    assert validate_plan(doc) == [] and validate_plan(data) == []
    n_deps = sum(len(s.get("depends_on", [])) for s in doc["steps"])
    n_bindings = sum(len(s.get("inputs", {})) for s in doc["steps"])

    rows: list[tuple[str, float, float]] = []
    gc.collect()
    rows.append(("validate_plan(dict)", *measure(lambda: validate_plan(doc), runs)))
    rows.append(("validate_plan(bytes), strict JSON read included", *measure(lambda: validate_plan(data), runs)))
    rows.append(("parse_plan(bytes), frozen Plan model built", *measure(lambda: parse_plan(data), runs)))
    try:
        from jsonschema import Draft202012Validator
    except ImportError:  # pragma: no cover - a dev dependency
        schema_row = None
    else:
        validator = Draft202012Validator(plan_schema())
        assert validator.is_valid(doc)
        schema_row = ("python-jsonschema Draft202012Validator(dict), precompiled", *measure(
            lambda: validator.is_valid(doc), runs))
        rows.append(schema_row)

    print(f"Validation of a {len(doc['steps'])}-step plan ({n_deps} dependency edges, {n_bindings} bindings, "
          f"{len(data) / 1024:.0f} KiB of JSON)")
    print(f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs; median and minimum of {runs} runs")
    print()
    width = max(len(r[0]) for r in rows)
    print(f"| {'what':<{width}} | median ms | min ms |")
    print(f"|{'-' * (width + 2)}|----------:|-------:|")
    for name, median, minimum in rows:
        print(f"| {name:<{width}} | {median:9.2f} | {minimum:6.2f} |")
    if schema_row is not None:
        print()
        print(f"python-jsonschema / validate_plan(dict):  {schema_row[1] / rows[0][1]:.1f}× slower")
        print(f"python-jsonschema / validate_plan(bytes): {schema_row[1] / rows[1][1]:.1f}× slower")


if __name__ == "__main__":
    main()
