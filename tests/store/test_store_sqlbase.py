"""The shared SQL layer: statements written once with ``?`` and rendered per dialect (no database needed)."""

from __future__ import annotations

import pytest

from ordinance.store.sqlbase import Statements, render
from ordinance.store.sqlite import SQLiteStore


def _statements(s: Statements) -> dict[str, str]:
    return {k: v for k, v in vars(s).items() if isinstance(v, str)}


def test_render_qmark_is_the_template_itself():
    t = "SELECT a FROM t WHERE b = ? AND c LIKE '%x?'"
    assert render(t, "?") is t


def test_render_format_translates_only_placeholders():
    t = (
        "SELECT 'it''s ?', \"odd?col\", 50 % 7 FROM t -- why?\n"
        "WHERE a = ? AND b LIKE 'x%' /* ? */ AND c IN (?, ?)"
    )
    assert render(t, "%s") == (
        "SELECT 'it''s ?', \"odd?col\", 50 %% 7 FROM t -- why?\n"
        "WHERE a = %s AND b LIKE 'x%%' /* ? */ AND c IN (%s, %s)"
    )


@pytest.mark.parametrize("bad", ["SELECT 'open ?", "SELECT \"open", "SELECT $$?$$", "SELECT $1"])
def test_render_refuses_what_it_cannot_read(bad):
    with pytest.raises(ValueError):
        render(bad, "%s")


def test_render_refuses_an_unknown_placeholder():
    with pytest.raises(ValueError):
        render("SELECT ?", ":1")


def test_each_dialect_gets_its_own_placeholders():
    pg = _statements(pytest.importorskip("ordinance.store.postgres").PostgresStore._sql)
    lite = _statements(SQLiteStore._sql)
    assert pg.keys() == lite.keys() and len(pg) > 20
    for name, text in pg.items():
        assert "?" not in text, name
        assert text.count("%s") == lite[name].count("?"), name
    for name, text in lite.items():
        assert "%" not in text, name
    assert pg["fence"].endswith("= %s FOR UPDATE") and lite["fence"].endswith("= ?")
    assert "ORDER BY n" in pg["receipts"] and "ORDER BY rowid" in lite["receipts"]
