"""Fixtures shared by the whole suite: real stores and real engines (helpers live in support.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def sqlite_store(tmp_path):
    from ordinance.store.sqlite import SQLiteStore

    st = SQLiteStore(str(tmp_path / "store" / "ordinance.db"))
    yield st
    st.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    """The engine's store, on each backend: SQLite, and the real PostgreSQL server in a schema of its own."""
    from support import opened_store

    with opened_store(request.param, tmp_path) as (st, _url):
        yield st


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def engine(store, workspace):
    from ordinance.engine import Engine

    return Engine(store, workspace=str(workspace))


