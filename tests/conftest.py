"""Fixtures shared by the whole suite: real stores and real engines (helpers live in support.py)."""

from __future__ import annotations

import pytest

@pytest.fixture
def sqlite_store(tmp_path):
    from ordinance.store.sqlite import SQLiteStore

    st = SQLiteStore(str(tmp_path / "store" / "ordinance.db"))
    yield st
    st.close()


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def engine(sqlite_store, workspace):
    from ordinance.engine import Engine

    return Engine(sqlite_store, workspace=str(workspace))


