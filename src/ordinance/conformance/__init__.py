"""The conformance suite (CONTRACT §12): one row per clause, COMPLIANT / VIOLATES / NOT IMPLEMENTED.

    from ordinance.conformance import run_suite
    report = run_suite()            # or run_suite(["§5.3", "R-RULESET-ORDER"])
    report.ok, report.summary()     # report.to_dict() is what `ordinance conformance --json` prints

The checks ship inside the package and exercise the real engine through its public API, each in a
fresh temporary store and workspace (the user's store is never touched).
"""

from .registry import CLAUSE_IDS, CLAUSES, NotImplementedClause, Violation, check, ensure, equal
from .runner import COMPLIANT, NOT_IMPLEMENTED, VIOLATES, CheckResult, ClauseResult, Report, run_suite

__all__ = [
    "CLAUSES", "CLAUSE_IDS", "COMPLIANT", "VIOLATES", "NOT_IMPLEMENTED", "CheckResult", "ClauseResult", "Report",
    "NotImplementedClause", "Violation", "check", "ensure", "equal", "run_suite",
]
