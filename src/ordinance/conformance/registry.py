"""The clause table and the check registry of the conformance suite (CONTRACT §12).

Every clause of the contract has a row in :data:`CLAUSES` (its id and a short title), in contract
order, with the named rule ids placed after the clause they belong to. Checks register with::

    @check("§5.3", "a synchronous step past its timeout is killed (STEP_TIMEOUT)")
    def _(h: Harness) -> str | None:
        ...
        ensure(result.error.error_code is ErrorCode.STEP_TIMEOUT, f"got {result.error.error_code}")

A check takes a fresh :class:`~ordinance.conformance.harness.Harness` and signals a violation by
raising :class:`Violation` (an ``AssertionError``; :func:`ensure` and :func:`equal` raise it). Plain
``assert`` is never used: it disappears under ``python -O`` and a check that cannot fail is a defect.
A check may return a short note (shown with the passing check). A check raises
:class:`NotImplementedClause` when the engine has no implementation of the clause at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

__all__ = [
    "CLAUSES", "CLAUSE_IDS", "CheckSpec", "NotImplementedClause", "Violation", "check", "checks_for", "ensure",
    "equal", "normalize_clause", "all_checks",
]

#: (id, title), in contract order. Rule ids follow the clause that defines them.
CLAUSES: tuple[tuple[str, str], ...] = (
    ("§0.1", "Canonical JSON"),
    ("§0.2", "Digest"),
    ("§0.3", "Plan digest"),
    ("§0.4", "Run id"),
    ("§0.5", "Paths"),
    ("§0.6", "Input hygiene"),
    ("§1", "Plan"),
    ("§1.1", "PlanStep"),
    ("§1.2", "RetryPolicy"),
    ("§1.3", "Data bindings"),
    ("§1.4", "Validation result"),
    ("R-VALIDATE-DET", "Same input, same violation list"),
    ("§2", "ExecutionContext"),
    ("R-CTX-OPAQUE", "Environment opacity"),
    ("§3", "PlanResult"),
    ("R-RESULT-ERROR", "Error iff partial or failure"),
    ("§3.1", "ExecutionError"),
    ("R-RESULT-PICK", "Plan-level error selection"),
    ("§4", "Error codes"),
    ("§5.0", "Admission, fail-closed"),
    ("§5.1", "Scheduling"),
    ("R-DETERMINISM", "Same outcomes, same statuses and journal kinds"),
    ("§5.2", "Attempts and failure handling"),
    ("§5.3", "Hard timeouts"),
    ("§5.4", "Nested plans"),
    ("§5.5", "Outcome"),
    ("§5.6", "The rule sets"),
    ("R-RULESET-ORDER", "Rule-set actions journaled in order"),
    ("R-NO-RESUME", "partial and failure are terminal"),
    ("R-EXEC-ID-ONCE", "An execution id runs once"),
    ("§5.7", "Events"),
    ("R-EVENTS-NONBLOCKING", "Sinks never delay or change a run"),
    ("§5.8", "Persistence, registry, recovery"),
    ("R-PLAN-IMMUTABLE", "Registered plan bodies are immutable"),
    ("§6.1", "Principals and tokens"),
    ("§6.2", "Envelope"),
    ("§6.3", "Decisions are journaled"),
    ("R-POLICY-AUDIT", "Policy decisions carry the policy digest"),
    ("§7.1", "Receipt"),
    ("§7.2", "Idempotency"),
    ("§7.3", "Compensation types"),
    ("§7.4", "Compensating a failure"),
    ("§8", "Journal"),
    ("§9", "Deploy bundles"),
    ("§10", "The strict legacy dialect"),
    ("§11", "Non-goals"),
    ("§12", "Interfaces and the built-in actions"),
)

CLAUSE_IDS: tuple[str, ...] = tuple(cid for cid, _ in CLAUSES)
_TITLES = dict(CLAUSES)


class Violation(AssertionError):
    """A check found the engine breaking its clause. The message says what and why."""


class NotImplementedClause(Exception):
    """The engine has no implementation of this clause at all (reported NOT IMPLEMENTED, never COMPLIANT)."""


@dataclass(frozen=True)
class CheckSpec:
    clause: str
    name: str
    func: Callable[[Any], Any]
    timeout_s: float = 60.0


_CHECKS: list[CheckSpec] = []


def check(clause: str, name: str, *, timeout_s: float = 60.0) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Register ``func(harness)`` as a check of ``clause`` (which must be in :data:`CLAUSES`)."""
    if clause not in _TITLES:
        raise ValueError(f"unknown clause {clause!r}")

    def decorate(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
        if any(c.clause == clause and c.name == name for c in _CHECKS):
            raise ValueError(f"duplicate check {clause}: {name}")
        _CHECKS.append(CheckSpec(clause, name, func, timeout_s))
        return func

    return decorate


def _load() -> None:
    from . import checks  # noqa: F401 - importing registers every check


def all_checks() -> list[CheckSpec]:
    _load()
    return list(_CHECKS)


def checks_for(clause: str) -> list[CheckSpec]:
    _load()
    return [c for c in _CHECKS if c.clause == clause]


def normalize_clause(text: str) -> str | None:
    """``§5.3``, ``5.3``, ``s5.3`` or a rule id in any case → the clause id, or None if unknown."""
    t = text.strip()
    if t.upper().startswith("R-"):
        t = t.upper()
        return t if t in _TITLES else None
    t = t.lstrip("§").lstrip("sS")
    cid = "§" + t
    return cid if cid in _TITLES else None


def title_of(clause: str) -> str:
    return _TITLES[clause]


# -- assertion helpers (never ``assert``) ------------------------------------------------------------------------

def ensure(condition: Any, message: str) -> None:
    """Raise :class:`Violation` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Violation(message)


def equal(actual: Any, expected: Any, what: str) -> None:
    """Raise :class:`Violation` unless ``actual == expected``, naming both."""
    if actual != expected:
        raise Violation(f"{what}: expected {_short(expected)}, got {_short(actual)}")


def _short(value: Any, limit: int = 400) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
