"""Fixtures for the worker suite: a store *URL* that separate processes (the real CLI) can share."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Backend:
    name: str
    url: str  # give this to subprocesses as --store
    store: Any  # an open store on the same data, for the test itself


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request, tmp_path):
    """The same data reachable by URL: a SQLite file (WAL, busy timeout) or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        from ordinance.store.sqlite import SQLiteStore

        path = tmp_path / "store" / "ordinance.db"
        st = SQLiteStore(str(path))
        yield Backend("sqlite", str(path), st)
        st.close()
        return
    from support import drop_pg_schema, pg_url_or_reason

    from ordinance.store.postgres import PostgresStore

    url, why = pg_url_or_reason()
    if url is None:
        pytest.skip(why)
    schema = "w_" + uuid.uuid4().hex[:12]
    st = PostgresStore(url, schema=schema)
    try:
        yield Backend("postgres", st.url, st)
    finally:
        st.close()
        drop_pg_schema(url, schema)


@pytest.fixture
def sqlite_backend(tmp_path):
    from ordinance.store.sqlite import SQLiteStore

    path = tmp_path / "store" / "ordinance.db"
    st = SQLiteStore(str(path))
    yield Backend("sqlite", str(path), st)
    st.close()
