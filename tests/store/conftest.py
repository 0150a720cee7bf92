"""Fixtures for the store suite: every shared test runs against SQLite and against the real PostgreSQL server.

PostgreSQL: ``$ORDINANCE_TEST_PG_URL`` or ``postgresql://127.0.0.1:5432/test`` (as the OS user, else ``postgres``).
Each test gets its own freshly created schema (dropped afterwards), so concurrent runs and real data never collide.
If no server answers, PostgreSQL tests are skipped with the connection error as the stated reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from backends import Backend, PostgresBackend, SQLiteBackend, require_pg  # noqa: F401
from ordinance.store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        b: Backend = SQLiteBackend(tmp_path)
    else:
        b = PostgresBackend(require_pg())
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()


@pytest.fixture
def make_store(backend: Backend) -> Callable[..., Store]:
    """Open another, independent store (its own connection(s)) on the same database."""
    return backend.open
