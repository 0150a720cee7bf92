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
    if request.param == "sqlite":
        from ordinance.store.sqlite import SQLiteStore

        st = SQLiteStore(str(tmp_path / "store" / "ordinance.db"))
        yield st
        st.close()
        return
    import uuid

    from ordinance.store.postgres import PostgresStore
    from support import drop_pg_schema, pg_url_or_reason

    url, why = pg_url_or_reason()
    if url is None:
        pytest.skip(why)
    schema = "t_" + uuid.uuid4().hex[:12]
    st = PostgresStore(url, schema=schema)
    try:
        yield st
    finally:
        st.close()
        drop_pg_schema(url, schema)


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def engine(store, workspace):
    from ordinance.engine import Engine

    return Engine(store, workspace=str(workspace))


