"""The rule table (rules.py) is complete: every reported rule id is tabled, documented and clause-linked."""

from __future__ import annotations

import re
from pathlib import Path

from ordinance.contract import jsonio, legacy, validate
from ordinance.contract.rules import CONTEXT_RULES, LEGACY_RULES, PLAN_RULES, RULES, rule

REPO = Path(__file__).resolve().parents[2]
RULE_ID = re.compile(r'"(R-[A-Z0-9-]+)"')


def test_every_rule_id_used_in_the_validators_is_tabled():
    used = set()
    for module in (validate, legacy, jsonio):
        used |= set(RULE_ID.findall(Path(module.__file__).read_text(encoding="utf-8")))
    assert used <= set(RULES), used - set(RULES)
    assert set(RULES) <= used, set(RULES) - used


def test_table_entries_are_well_formed():
    for entry in RULES.values():
        assert entry.clause.startswith("§") and entry.description
        assert entry.schema in ("full", "partial", "none")
        assert entry.documents and set(entry.documents) <= {"plan", "context", "legacy"}
        if entry.schema == "partial":
            assert entry.schema_gap
    assert rule("R-PLAN-ID").clause == "§1"
    assert set(PLAN_RULES) | set(CONTEXT_RULES) | set(LEGACY_RULES) == set(RULES)


def test_docs_rules_md_lists_every_rule():
    text = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    for rule_id in RULES:
        assert f"`{rule_id}`" in text, rule_id
