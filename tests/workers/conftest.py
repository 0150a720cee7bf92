"""Fixtures for the worker suite: a store *URL* that separate processes (the real CLI) can share."""

from __future__ import annotations

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
    from support import opened_store

    with opened_store(request.param, tmp_path, schema_prefix="w_") as (st, url):
        yield Backend(request.param, url, st)


@pytest.fixture
def sqlite_backend(tmp_path):
    from ordinance.store.sqlite import SQLiteStore

    path = tmp_path / "store" / "ordinance.db"
    st = SQLiteStore(str(path))
    yield Backend("sqlite", str(path), st)
    st.close()
