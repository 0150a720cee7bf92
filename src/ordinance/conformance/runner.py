"""Running the clause suite: one fresh harness per check, a watchdog per check, one report."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .registry import CLAUSES, CheckSpec, NotImplementedClause, checks_for, normalize_clause

__all__ = ["CheckResult", "ClauseResult", "Report", "run_suite", "COMPLIANT", "VIOLATES", "NOT_IMPLEMENTED"]

COMPLIANT = "COMPLIANT"
VIOLATES = "VIOLATES"
NOT_IMPLEMENTED = "NOT IMPLEMENTED"


@dataclass
class CheckResult:
    clause: str
    name: str
    ok: bool | None  # None: the clause is not implemented
    message: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "message": self.message, "seconds": round(self.seconds, 3)}


@dataclass
class ClauseResult:
    clause: str
    title: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        if any(c.ok is False for c in self.checks):
            return VIOLATES
        if not self.checks or any(c.ok is None for c in self.checks):
            return NOT_IMPLEMENTED
        return COMPLIANT

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.ok is False]

    def to_dict(self) -> dict[str, Any]:
        return {"clause": self.clause, "title": self.title, "status": self.status, "seconds": round(self.seconds, 3),
                "checks": [c.to_dict() for c in self.checks]}


@dataclass
class Report:
    clauses: list[ClauseResult]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when no clause VIOLATES (NOT IMPLEMENTED does not fail the report)."""
        return all(c.status != VIOLATES for c in self.clauses)

    def clause(self, clause_id: str) -> ClauseResult:
        for c in self.clauses:
            if c.clause == clause_id:
                return c
        raise KeyError(clause_id)

    def summary(self) -> dict[str, Any]:
        checks = [x for c in self.clauses for x in c.checks]
        return {
            "clauses": len(self.clauses),
            "compliant": sum(1 for c in self.clauses if c.status == COMPLIANT),
            "violates": sum(1 for c in self.clauses if c.status == VIOLATES),
            "not_implemented": sum(1 for c in self.clauses if c.status == NOT_IMPLEMENTED),
            "checks": len(checks),
            "checks_passed": sum(1 for x in checks if x.ok is True),
            "checks_failed": sum(1 for x in checks if x.ok is False),
            "checks_not_implemented": sum(1 for x in checks if x.ok is None),
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"clauses": [c.to_dict() for c in self.clauses], "summary": self.summary()}


def _run_check(spec: CheckSpec) -> CheckResult:
    """Run one check in its own thread, in a fresh harness, under a watchdog."""
    from .harness import Harness

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            h = Harness()
        except BaseException as exc:  # noqa: BLE001
            box["exc"] = exc
            return
        box["harness"] = h
        try:
            box["value"] = spec.func(h)
        except BaseException as exc:  # noqa: BLE001 - reported, never raised
            box["exc"] = exc
        finally:
            h.close()

    started = time.perf_counter()
    t = threading.Thread(target=target, name=f"conformance {spec.clause}: {spec.name}", daemon=True)
    t.start()
    t.join(spec.timeout_s)
    seconds = time.perf_counter() - started
    if t.is_alive():
        h = box.get("harness")
        if h is not None:
            import shutil

            shutil.rmtree(h.root, ignore_errors=True)
        return CheckResult(spec.clause, spec.name, False,
                           f"did not finish within {spec.timeout_s:g} s (the engine hung)", seconds)
    exc = box.get("exc")
    if exc is None:
        note = box.get("value")
        return CheckResult(spec.clause, spec.name, True, note if isinstance(note, str) else "", seconds)
    if isinstance(exc, NotImplementedClause):
        return CheckResult(spec.clause, spec.name, None, str(exc), seconds)
    if isinstance(exc, AssertionError):
        return CheckResult(spec.clause, spec.name, False, str(exc) or "assertion failed", seconds)
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    return CheckResult(spec.clause, spec.name, False,
                       f"the check could not complete: {type(exc).__name__}: {exc}{at}", seconds)


def run_suite(
    selected: Iterable[str] | None = None,
    *,
    progress: Callable[[CheckResult], Any] | None = None,
) -> Report:
    """Run the checks of every clause (or of ``selected`` clause ids) and return the :class:`Report`.

    Every check runs against its own temporary store and workspace; the user's store is never opened.
    Raises ``ValueError`` for an unknown clause id.
    """
    wanted: list[str] | None = None
    if selected is not None:
        wanted = []
        for text in selected:
            cid = normalize_clause(text)
            if cid is None:
                raise ValueError(f"unknown clause {text!r}")
            if cid not in wanted:
                wanted.append(cid)
    started = time.perf_counter()
    results: list[ClauseResult] = []
    # The engine (and asyncio's child watcher) log the faults the checks provoke on purpose: keep them off stderr.
    loggers = [logging.getLogger(name) for name in ("ordinance", "asyncio")]
    saved = [(lg, lg.propagate, list(lg.handlers)) for lg in loggers]
    for lg in loggers:
        lg.propagate = False
        lg.handlers = [logging.NullHandler()]
    try:
        for cid, title in CLAUSES:
            if wanted is not None and cid not in wanted:
                continue
            cr = ClauseResult(cid, title)
            for spec in checks_for(cid):
                res = _run_check(spec)
                cr.checks.append(res)
                if progress is not None:
                    progress(res)
            results.append(cr)
    finally:
        for lg, propagate, handlers in saved:
            lg.propagate, lg.handlers = propagate, handlers
    return Report(results, time.perf_counter() - started)
