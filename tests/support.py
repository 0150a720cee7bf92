"""Helpers shared by the tests (plan builder, journal readers, the real CLI)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def sid(i: int) -> str:
    """A fixed, valid lowercase UUID v4 for step/plan number ``i``."""
    return f"00000000-0000-4000-8000-{i:012d}"


PLAN_ID = "11111111-1111-4111-8111-111111111111"


def make_plan(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A valid v1 plan document; steps get ids 1..n unless they name one."""
    out = []
    for i, s in enumerate(steps, 1):
        s = dict(s)
        s.setdefault("id", sid(i))
        out.append(s)
    plan = {"id": PLAN_ID, "version": 1, "name": "test plan", "created_at": 1, "steps": out,
            "context_requirements": ["TARGET"]}
    plan.update(fields)
    return plan


ENV = {"TARGET": "test"}


def journal_kinds(store, execution_id: str) -> list[str]:
    return [r.kind for r in store.journal(execution_id)]


def journal_records(store, execution_id: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in store.journal(execution_id)]


def cli(*args: str, cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
        input: bytes | None = None, timeout: float = 60):
    """Run the real ``ordinance`` CLI in a subprocess."""
    import subprocess

    full_env = dict(os.environ)
    full_env.pop("ORDINANCE_STORE", None)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "ordinance.cli.app", *args], cwd=cwd, env=full_env, input=input,
                          capture_output=True, timeout=timeout)


PG_URL = os.environ.get("ORDINANCE_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")


def pg_url_or_reason() -> tuple[str | None, str]:
    """(a PostgreSQL URL that connects, "") or (None, why not): tries the OS user, then ``postgres``."""
    return _pg_probe()


def _pg_probe_impl() -> tuple[str | None, str]:
    import getpass
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    errors = []
    parts = urlsplit(PG_URL)
    users = [None] if "@" in parts.netloc else [getpass.getuser(), "postgres"]
    for user in users:
        url = PG_URL if user is None else urlunsplit(parts._replace(netloc=f"{user}@{parts.netloc}"))
        try:
            psycopg.connect(url, connect_timeout=3).close()
            return url, ""
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            errors.append(f"{user or 'url user'}: {' '.join(str(exc).split())}")
    return None, "PostgreSQL not reachable at 127.0.0.1:5432: " + "; ".join(errors)


_PG_CACHE: list[tuple[str | None, str]] = []


def _pg_probe() -> tuple[str | None, str]:
    if not _PG_CACHE:
        _PG_CACHE.append(_pg_probe_impl())
    return _PG_CACHE[0]


def drop_pg_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def chain_ok(store) -> None:
    """Every execution's hash chain links, and each entry hash is the digest of its body (§8); leaf indices are
    contiguous from 0."""
    import hashlib

    last: dict[str, tuple[int, str]] = {}
    n = 0
    for rec in store.journal():
        assert rec.leaf_index == n
        n += 1
        body = json.loads(rec.body)
        assert "sha256:" + hashlib.sha256(rec.body).hexdigest() == rec.entry_hash
        seq, prev = last.get(rec.execution_id, (-1, "sha256:" + "0" * 64))
        assert body["seq"] == seq + 1 and body["prev_entry_hash"] == prev, (rec.execution_id, body["kind"])
        last[rec.execution_id] = (body["seq"], rec.entry_hash)


def opened_store(kind: str, tmp_path, *, schema_prefix: str = "t_"):
    """A context manager yielding a fresh store of ``kind`` ("sqlite" or "postgres") and a URL that reaches the
    same data from another process. PostgreSQL gets a schema of its own, dropped afterwards; when no server
    answers, the test is skipped with the reason."""
    import contextlib
    import uuid

    import pytest

    @contextlib.contextmanager
    def opened():
        if kind == "sqlite":
            from ordinance.store.sqlite import SQLiteStore

            path = tmp_path / "store" / "ordinance.db"
            st = SQLiteStore(str(path))
            try:
                yield st, str(path)
            finally:
                st.close()
            return
        from ordinance.store.postgres import PostgresStore

        url, why = pg_url_or_reason()
        if url is None:
            pytest.skip(why)
        schema = schema_prefix + uuid.uuid4().hex[:12]
        st = PostgresStore(url, schema=schema)
        try:
            yield st, st.url
        finally:
            st.close()
            drop_pg_schema(url, schema)

    return opened()


def proc_stats():
    """(pid, fields after the command name) of every process in /proc: fields[0] is the state, [1] the parent
    pid, [2] the process group."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        yield int(entry), fields
