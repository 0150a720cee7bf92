"""Store backends for the store suite: SQLite, and the real PostgreSQL server in a schema of its own per test.

PostgreSQL: ``$ORDINANCE_TEST_PG_URL`` or ``postgresql://127.0.0.1:5432/test`` (as the OS user, else ``postgres``).
If no server answers, PostgreSQL tests are skipped with the connection error as the stated reason.
(A module of its own, not conftest.py: tests import it by a name no other directory uses.)
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ordinance.store import Store
from ordinance.store.sqlite import SQLiteStore

PG_URL = os.environ.get("ORDINANCE_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")


def pg_admin_url() -> tuple[str | None, str]:
    """(a URL that connects, "") or (None, why not) — the suite-wide probe in tests/support.py."""
    from support import pg_url_or_reason

    return pg_url_or_reason()


def require_pg() -> str:
    url, why = pg_admin_url()
    if url is None:
        where = urlsplit(PG_URL).netloc.rsplit("@", 1)[-1] or PG_URL
        pytest.skip(f"PostgreSQL not reachable at {where}: {why}")
    return url


class Backend:
    name: str
    url: str  # what open_store() / a subprocess would be given

    def __init__(self) -> None:
        self._opened: list[Store] = []

    def open(self, **options: Any) -> Store:
        store = self._open(**options)
        self._opened.append(store)
        return store

    def _open(self, **options: Any) -> Store:
        raise NotImplementedError

    def raw_execute(self, statement: str) -> list[tuple]:
        """Run SQL directly against the backing database (outside the store) and return the rows."""
        raise NotImplementedError

    def cleanup(self) -> None:
        for store in self._opened:
            store.close()


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__()
        self.path = tmp_path / ".ordinance" / "ordinance.db"
        self.url = "sqlite://" + str(self.path)

    def _open(self, **options: Any) -> Store:
        return SQLiteStore(self.path, **options)

    def raw_execute(self, statement: str) -> list[tuple]:
        import sqlite3

        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            return conn.execute(statement).fetchall()
        finally:
            conn.close()


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, admin_url: str) -> None:
        super().__init__()
        from ordinance.store.postgres import _url_with_search_path

        self.admin_url = admin_url
        self.schema = "ordinance_test_" + uuid.uuid4().hex[:16]
        self.url = _url_with_search_path(admin_url, self.schema)

    def _open(self, **options: Any) -> Store:
        from ordinance.store.postgres import PostgresStore

        return PostgresStore(self.admin_url, schema=self.schema, **options)

    def raw_execute(self, statement: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def cleanup(self) -> None:
        super().cleanup()
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


